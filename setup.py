"""pip path: `pip install -e .` (make setup). The colcon path builds CMakeLists.txt instead."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def version() -> str:
    for line in (HERE / "rap_planner" / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            return line.split('"')[1]
    raise RuntimeError("no __version__ in rap_planner/__init__.py")


setup(
    name="rap_planner",
    version=version(),
    description="Prediction-coupled, risk-aware planning for ROS 2",
    packages=find_packages(include=["rap_planner", "rap_planner.*"]),
    package_data={"rap_planner": ["models/*", "sim/networks/*", "*.so", "msg/*"]},
    data_files=[
        ("share/rap_planner", ["package.xml"]),
        ("share/rap_planner/msg", [str(p) for p in sorted(HERE.glob("msg/*.msg"))]),
        ("share/rap_planner/launch", [str(p) for p in sorted(HERE.glob("launch/*")) if p.is_file()]),
        ("share/rap_planner/config", [str(p) for p in sorted(HERE.glob("config/*.yaml"))]),
        ("share/rap_planner/config/scenarios", [str(p) for p in sorted(HERE.glob("config/scenarios/*.yaml"))]),
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "torch", "cvxpy", "shapely", "safetensors", "pyyaml", "tqdm", "rich", "matplotlib"],
    entry_points={"console_scripts": ["rap-planner = rap_planner.cli:main"]},
)
