import time

from agentkd import PythonWorker


def handler(name, args, kwargs):
    if name == "boom":
        raise ValueError("bad input")
    if name == "big":
        return "y" * 500_000
    return {"echo": args, "kw": kwargs}


def test_variables_persist_and_last_expression_is_shown():
    with PythonWorker() as w:
        assert w.run("x = 40").stdout == ""
        assert w.run("x + 2").stdout == "42\n"
        assert w.run("print(x * 2)").stdout == "80\n"


def test_tool_calls_are_proxied_to_the_host():
    with PythonWorker(["lookup", "boom", "big"], handler) as w:
        r = w.run("r = lookup(1, 'a', key=[2])\nprint(r['echo'], r['kw'])")
        assert r.error is None and r.stdout == "[1, 'a'] {'key': [2]}\n"
        r = w.run("boom()")
        assert "bad input" in r.error and "RuntimeError" in r.error
        r = w.run("print(len(big()))")
        assert r.error is None and int(r.stdout) < 200_000  # size-bounded result


def test_errors_report_type_message_and_line():
    with PythonWorker() as w:
        r = w.run("a = 1\nb = a / 0")
        assert r.error == "ZeroDivisionError: division by zero (line 2)"
        r = w.run("def f(:\n  pass")
        assert r.error.startswith("SyntaxError")


def test_final_answer_cannot_be_swallowed_by_except_exception():
    with PythonWorker() as w:
        r = w.run("try:\n    final_answer({'a': 1})\nexcept Exception:\n    print('swallowed')")
        assert r.final and r.answer == {"a": 1} and "swallowed" not in r.stdout


def test_timeout_restarts_worker_and_says_state_was_lost():
    with PythonWorker(timeout=0.5) as w:
        w.run("kept = 1")
        started = time.monotonic()
        r = w.run("while True: pass")
        assert r.timed_out and time.monotonic() - started < 3
        assert "state" in r.error.lower() or "variables" in r.error
        r = w.run("print(kept)")
        assert "NameError" in r.error  # fresh worker
        assert w.run("print('alive')").stdout == "alive\n"


def test_crash_of_worker_gives_error_and_fresh_worker():
    with PythonWorker() as w:
        r = w.run("import os\nos._exit(3)")
        assert r.restarted and "crashed" in r.error
        assert w.run("print(1)").stdout == "1\n"


def test_output_is_truncated_to_a_bound():
    with PythonWorker(max_output=1000) as w:
        r = w.run("print('z' * 5_000_000)")
        assert len(r.stdout) < 1200 and "truncated" in r.stdout


def test_host_refuses_undeclared_tools_and_malformed_calls():
    w = PythonWorker(["lookup"], handler)
    assert w._serve_tool_call({"op": "call", "name": "boom", "args": [], "kwargs": {}})["op"] == "raise"
    assert w._serve_tool_call({"op": "call", "name": "lookup", "args": "notalist", "kwargs": {}})["op"] == "raise"
    assert w._serve_tool_call({"op": "call", "name": "lookup", "args": [1], "kwargs": {}}) == {
        "op": "return", "value": {"echo": [1], "kw": {}}}
