"""Sinks write result records: PNG figures, the runner's vis backends, saved records, the report."""
from .records import RecordSink, load_record, load_results, read_index, save_record
from .run import RunSinks

__all__ = ['RunSinks', 'RecordSink', 'load_record', 'load_results', 'read_index', 'save_record']
