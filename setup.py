"""logwarden: web log security alerts, capacity reports and an encrypted archive on Apache Beam.

The same file installs the command for people (``pip install -e .``) and ships the
packages to remote Beam workers (``--setup_file ./setup.py``).
"""

from pathlib import Path

from setuptools import find_packages, setup

README = Path(__file__).with_name("README.md")

setup(
    name="logwarden",
    version="0.1.0",
    description="Web access/error logs to security alerts, capacity reports and an encrypted Parquet archive",
    long_description=README.read_text(encoding="utf-8") if README.exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["schemas*", "parsers*", "alerts*", "retention*", "pipelines*"]),
    package_data={
        "alerts": ["rules/*.yaml", "rules/*.txt", "rules/*.md"],
        "pipelines": ["reports/*.j2", "reports/vendor/*"],
    },
    include_package_data=True,
    install_requires=[
        "apache-beam>=2.77,<2.78",  # pinned: the stream sets FnApiRunner's private state-cache size (NOTES.md)
        "pyarrow>=17,<26",
        "numpy>=1.24",
        "cryptography>=42,<51",
        "user-agents>=2.2,<3",
        "ua-parser>=1.0,<2",
        "ua-parser-rs>=0.1.5,<1",  # the Rust regex engine: about 30x faster per distinct user agent
        "maxminddb>=2.5,<4",  # geoip2's reader, used directly for raw records (2.5x faster than models)
        "geoip2>=4.8,<6",
        "PyYAML>=6,<7",
        "zstandard>=0.22,<1",
        "datasketches>=5,<6",
        "Jinja2>=3.1,<4",
        "duckdb>=2,<3",
        "google-re2>=1.1,<2",  # detection: a pattern compiled once for a batch's few new values (alerts/regex.py)
        "rich>=13,<15",  # the progress display on a terminal
    ],
    extras_require={
        # The Pub/Sub stream source (Dataflow); not needed for followed files.
        "pubsub": ["apache-beam[gcp]>=2.77,<2.78"],
        "dev": [
            "pytest>=8,<10",
            "pytest-xdist>=3.5,<4",  # make test runs one worker per core
            "hypothesis>=6.100,<7",
            "ruff>=0.6,<1",
            "mmdb-writer>=0.2,<1",
            "websockets>=13,<17",  # drives headless chromium (DevTools protocol) in the report page test
        ],
        # Only the baseline column of 'python -m bench detection-quality' (GPL-3.0 wrapper of libinjection);
        # detection itself never imports it.
        "bench": ["libinjection-python>=1.1,<2"],
    },
    entry_points={"console_scripts": ["logwarden=pipelines.cli:entry_point"]},
)
