"""Only tests marked `services` may start a process (the rule in tests/conftest.py), so that
`pytest -m "not services"` stays fast and needs no service: each case runs in a pytest of its own
under that conftest."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
REFUSED = "test_case.py::test_case started the process "
HINT = "but is not marked `services`. Mark the test @pytest.mark.services"

CASES = {
    "subprocess": """
        import subprocess

        def test_case():
            subprocess.run(["true"], check=True)
    """,
    "multiprocessing": """
        import multiprocessing

        def test_case():
            multiprocessing.Process(target=print).start()
    """,
    "a session fixture": """
        import subprocess
        import pytest

        @pytest.fixture(scope="session")
        def server():
            return subprocess.Popen(["sleep", "0"])

        def test_case(server):
            pass
    """,
    "in a thread": """
        import subprocess
        import threading

        def test_case():
            thread = threading.Thread(target=subprocess.run, args=(["true"],))
            thread.start()
            thread.join()
    """,
    "under Dagster's log mirror": """
        import subprocess
        import sys
        from dagster._core.execution.compute_logs import mirror_stream_to_file

        def test_case(tmp_path):
            with mirror_stream_to_file(sys.stdout, str(tmp_path / "step.out")):
                subprocess.run(["true"], check=True)
    """,
    "under xfail": """
        import subprocess
        import pytest

        @pytest.mark.xfail(strict=True, reason="expects an error")
        def test_case():
            subprocess.run(["true"], check=True)
    """,
}


@pytest.fixture
def run_case(pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\nmarkers =\n    services: starts a process\n")

    def run(source: str) -> pytest.RunResult:
        pytester.makepyfile(test_case=source)
        return pytester.runpytest_inprocess("-p", "no:cacheprovider")

    return run


@pytest.mark.parametrize("source", CASES.values(), ids=CASES.keys())
def test_a_process_started_by_an_unmarked_test_fails_it_naming_the_test_and_the_fix(run_case, source):
    result = run_case(source)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 1, result.stdout.str()
    assert REFUSED in result.stdout.str() and HINT in result.stdout.str(), result.stdout.str()


def test_dagsters_compute_log_mirror_is_no_service(run_case):
    """A run on an on-disk instance mirrors each step's output with `tail -F` (and a watcher), as
    every test using the `instance` fixture does: allowed."""
    result = run_case("""
        import dagster as dg

        @dg.asset
        def loud() -> None:
            print("mirrored")

        def test_case(tmp_path):
            with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
                assert dg.materialize([loud], instance=instance).success
    """)
    result.assert_outcomes(passed=1)


@pytest.mark.services  # the marked case starts a real process
def test_a_test_marked_services_may_start_a_process(run_case):
    result = run_case("""
        import subprocess
        import pytest

        @pytest.mark.services
        def test_case():
            subprocess.run(["true"], check=True)
    """)
    result.assert_outcomes(passed=1)
