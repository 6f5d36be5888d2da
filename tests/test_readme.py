"""The README's fresh-machine commands are the ones CI runs."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```(?:bash|sh)\n(.*?)\n```", text, flags=re.S)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"TEST_COMMAND='(.*)'", ci).group(1)
    assert command in _readme_commands(), "README must show exactly the command .ci/run executes"
    assert command.startswith("pip install torch==2.13.0"), "CPU torch must be pinned before anything pulls torch"


def test_readme_main_job_installs_cpu_torch_and_makes_figures():
    main_jobs = [c for c in _readme_commands() if "chansim figures" in c and c.startswith("pip install")]
    assert main_jobs, "README needs one command that installs and regenerates the figures"
    assert main_jobs[0].startswith("pip install torch==2.13.0 && ")
