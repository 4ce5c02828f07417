"""mmattnvis: see what OpenMMLab object detectors look at.

As MMDetection does, the configs, tools, demo and shipped models go into ``mmattnvis/.mim/``
(``add_mim_extension``): copied when a wheel or sdist is built, symlinked for ``develop`` /
editable installs. ``mim run mmattnvis featmap_vis ...`` and ``mmattnvis::`` configs read them
there.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
MIM_ITEMS = ('configs', 'tools', 'demo', 'models', 'model-index.yml')
# training logs and scalars stay in the repository; the model cards (README.md) ship
# the HTML report's templates and scripts (mmattnvis/report/)
REPORT_DATA = ['report/templates/*.html', 'report/static/*.js', 'report/static/*.css']
MIM_SKIP = ('__pycache__', '*.pyc', 'train.log', 'train_scalars.json')


def _version() -> str:
    ns: dict = {}
    with open(osp.join(ROOT, 'mmattnvis', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


def add_mim_extension() -> None:
    """Fill ``mmattnvis/.mim`` with copies (builds) or relative symlinks (develop, editable)."""
    if any(cmd in sys.argv for cmd in ('develop', 'editable_wheel')):
        mode = 'symlink'
    elif any(cmd in sys.argv for cmd in ('sdist', 'bdist_wheel', 'build', 'build_py')):
        mode = 'copy'
    else:
        return
    mim_dir = osp.join(ROOT, 'mmattnvis', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for item in MIM_ITEMS:
        src = osp.join(ROOT, item)
        dst = osp.join(mim_dir, item)
        if not osp.exists(src):  # building from an sdist: .mim is already filled
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(*MIM_SKIP))
        else:
            shutil.copyfile(src, dst)


def _mim_package_data() -> list:
    """Every file under ``mmattnvis/.mim``, relative to the package."""
    pkg = osp.join(ROOT, 'mmattnvis')
    out = []
    for dirpath, _, files in os.walk(osp.join(pkg, '.mim'), followlinks=True):
        out += [osp.relpath(osp.join(dirpath, f), pkg) for f in files]
    return out


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmattnvis',
        version=_version(),
        description='Feature maps, DETR attention and relevance maps for '
        'MMDetection / MMYOLO detectors',
        long_description=open(osp.join(ROOT, 'README.md')).read()
        if osp.exists(osp.join(ROOT, 'README.md')) else '',
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.8',
        packages=find_packages(exclude=('tests', 'tests.*', 'tools', 'benchmarks', 'configs',
                                        'demo', 'models')),
        package_data={'mmattnvis': _mim_package_data() + REPORT_DATA},
        include_package_data=False,
        install_requires=[
            'torch>=2.0',
            'torchvision',
            'mmengine>=0.10.0,<1.0',
            'mmcv>=2.0.0,<2.2.0',
            'mmdet>=3.0.0,<3.4.0',
            'grad-cam>=1.4.8',
            'numpy',
            'opencv-python-headless',
            'imageio>=2.20',
            'scipy',
            'jinja2>=3.0',
        ],
        extras_require={
            'mmyolo': ['mmyolo>=0.6.0'],
            'mim': ['openmim'],
            'tests': ['pytest', 'pytest-timeout', 'tensorboard', 'imageio-ffmpeg', 'ruff', 'mypy',
                      'playwright', 'tidecv'],
        },
        entry_points={'console_scripts': ['mmattnvis = mmattnvis.cli.main:main']},
        zip_safe=False,
    )
