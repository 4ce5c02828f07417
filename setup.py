"""mmattnvis: see what OpenMMLab object detectors look at."""
import os.path as osp

from setuptools import find_packages, setup


def _version() -> str:
    ns: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmattnvis', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


setup(
    name='mmattnvis',
    version=_version(),
    description='Feature maps, DETR attention and relevance maps for '
    'MMDetection / MMYOLO detectors',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read()
    if osp.exists(osp.join(osp.dirname(__file__), 'README.md')) else '',
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    packages=find_packages(exclude=('tests', 'tests.*', 'tools', 'benchmarks')),
    include_package_data=True,
    install_requires=[
        'torch>=2.0',
        'torchvision',
        'mmengine>=0.10.0,<1.0',
        'mmcv>=2.0.0,<2.1.0',
        'mmdet>=3.0.0,<3.4.0',
        'mmyolo>=0.6.0',
        'grad-cam>=1.4.8',
        'numpy',
        'opencv-python-headless',
        'imageio>=2.20',
        'scipy',
    ],
    extras_require={
        'tests': ['pytest', 'pytest-timeout', 'tensorboard'],
    },
    zip_safe=False,
)
