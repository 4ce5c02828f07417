"""Sinks write result records: PNG figures, the runner's vis backends, saved records, the report."""
from .records import RecordSink, load_record, load_results, read_index, save_record

__all__ = ['RecordSink', 'load_record', 'load_results', 'read_index', 'save_record']
