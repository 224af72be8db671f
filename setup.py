from configparser import ConfigParser
from pathlib import Path
import setuptools, shlex

# note: all settings are in settings.ini; edit there, not here
here = Path(__file__).resolve().parent
if not (here / 'settings.ini').is_file():
    raise SystemExit(f"setup.py needs settings.ini beside it in {here}, where all of the package's settings live; it is missing. "
                     "Build from a clone of the repository, or from an sdist built with the MANIFEST.in that includes it.")
config = ConfigParser(delimiters=['='])
config.read(here / 'settings.ini', encoding='utf-8')
cfg = config['DEFAULT']

cfg_keys = 'version description keywords author author_email'.split()
expected = cfg_keys + "lib_name user branch license status min_python audience language".split()
for o in expected: assert o in cfg, "missing expected setting: {}".format(o)
setup_cfg = {o:cfg[o] for o in cfg_keys}

licenses = {'apache2': 'Apache-2.0', 'mit': 'MIT', 'bsd3': 'BSD-3-Clause'}
statuses = [ '0 - Pre-Planning', '1 - Planning', '2 - Pre-Alpha', '3 - Alpha',
    '4 - Beta', '5 - Production/Stable', '6 - Mature', '7 - Inactive' ]
py_versions = '3.11'.split()  # the versions CI tests; a classifier claims support, so list only what is tested

requirements = shlex.split(cfg.get('requirements', ''))
if cfg.get('pip_requirements'): requirements += shlex.split(cfg.get('pip_requirements', ''))
min_python = cfg['min_python']
def _v(s): return tuple(int(x) for x in s.split('.'))
# every NAME_requirements setting is an extra: pip install 'paramfittorchdemo[NAME]' (dev, discovery, logging, distributed, bench)
extras = {k[:-len('_requirements')]: (cfg.get(k) or '').split() for k in cfg if k.endswith('_requirements') and k != 'pip_requirements'}

setuptools.setup(
    name = cfg['lib_name'],
    license = licenses.get(cfg['license'].lower(), cfg['license']),
    classifiers = [
        'Development Status :: ' + statuses[int(cfg['status'])],
        'Intended Audience :: ' + cfg['audience'].title(),
        'Natural Language :: ' + cfg['language'].title(),
    ] + ['Programming Language :: Python :: '+o for o in py_versions if _v(o) >= _v(min_python)],
    url = cfg['git_url'],
    # the datasets folder is a data-only package (no __init__.py): named here, with its files as package data
    packages = setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']) + [cfg['lib_path'] + '.datasets'],
    include_package_data = True,
    package_data = {cfg['lib_path'] + '.datasets': ['*.csv']},  # shipped datasets, e.g. load_lynx_hare's file
    install_requires = requirements,
    extras_require = extras,
    dependency_links = cfg.get('dep_links','').split(),
    python_requires  = '>=' + cfg['min_python'],
    long_description = (here / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type = 'text/markdown',
    zip_safe = False,
    entry_points = {
        'console_scripts': cfg.get('console_scripts','').split(),
        'nbdev': [f'{cfg.get("lib_path")}={cfg.get("lib_path")}._modidx:d']
    },
    **setup_cfg)
