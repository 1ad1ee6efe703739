"""Property-based fuzzing of trial files, run specs and CLI arguments.

Every mutant starts from a real input (the bundled trial files, including
one with digitized curves, and ``configs/clocc.toml``) and breaks one to
three things: a value replaced by an evil one (huge, negative, infinite,
wrong type, control characters, paths leaving the directory), a key
deleted, renamed or added, deep nesting, or raw text damage (truncation,
flipped bytes). The properties are the promise of issue 13:

* the CLI never raises (no traceback) and never hangs;
* it exits 0, or 2 with exactly one line under 300 characters on stderr,
  with no escape codes;
* a refusal writes nothing, and nothing is ever written outside the case's
  own directory.

The default profile runs a few dozen cases per property (seconds); set
``KMBAYES_FUZZ=slow`` for the large profile (thousands of cases, the
campaign of ``benchmarks/fuzz_campaign.py`` runs the same generators in
subprocesses so signals are seen too).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import random
import shutil
import signal
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kmbayes import cli

ROOT = Path(__file__).resolve().parents[1]
TRIALS = [ROOT / "data" / "raw" / n for n in ("clocc_os.toml", "clocc_os_2012cut.toml", "checkmate017_os.toml")]
SPEC = ROOT / "configs" / "clocc.toml"

settings.register_profile("kmbayes-default", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("kmbayes-slow", max_examples=2500, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
PROFILE = "kmbayes-slow" if os.environ.get("KMBAYES_FUZZ") == "slow" else "kmbayes-default"

# --------------------------------------------------------------------------- TOML writer


def _key(k: str) -> str:
    return _str(str(k))


def _str(s: str) -> str:
    # JSON string escapes are TOML basic-string escapes; DEL and C1 must be escaped too.
    out = json.dumps(s, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if 0x7F <= ord(c) <= 0x9F else c for c in out)


def _val(v) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_val(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_val(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def dump_toml(doc: dict) -> str:
    """Top-level tables as ``[name]`` headers, everything below inline."""
    lines = []
    for k, v in doc.items():
        if not isinstance(v, dict):
            lines.append(f"{_key(k)} = {_val(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{_key(k)}]")
            lines.extend(f"{_key(kk)} = {_val(vv)}" for kk, vv in v.items())
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- mutations

EVIL = [
    -1, 0, 1, 2, 3, 7, 10**18, -(10**18), 2**63 - 1, 10**30, 1e18, 1e300, -1e300, 1e6, 1e-300, 0.5, -0.5,
    math.inf, -math.inf, math.nan, True, False, "", "x" * 300, "a\nb", "\x1b[31mred\x1b[0m", "\u202eevil",
    "$\\frac{1}{0}$", "../../../etc/passwd", "/etc/passwd", "/proc/self/environ", "x/../../../p", "é" * 50,
    "n" * 5000, [], {}, [1, 2], {"x": 1}, [{"time": 1, "estimate": 0.5}], "nutpie", "pymc", "inf",
]


def _nodes(doc, path=()):
    """Every (path, value) in a document."""
    yield path, doc
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _nodes(v, path + (i,))


def _parent(doc, path):
    cur = doc
    for k in path[:-1]:
        cur = cur[k]
    return cur


class Raw(str):
    """TOML text inserted as is (deep nesting is written, not built: the writer is recursive)."""


def _deep(depth: int) -> Raw:
    if depth % 2:
        return Raw("[" * depth + "1" + "]" * depth)
    return Raw("{x = " * depth + "1" + "}" * depth)


def mutate_doc(doc: dict, rng: random.Random, extra_keys=("draw", "chain", "nn", "evnts")) -> dict:
    """One structural mutation of a parsed document (in a copy)."""
    doc = copy.deepcopy(doc)
    nodes = [p for p, _ in _nodes(doc) if p]
    path = rng.choice(nodes)
    parent, last = _parent(doc, path), path[-1]
    op = rng.random()
    if op < 0.55:
        parent[last] = copy.deepcopy(rng.choice(EVIL))
    elif op < 0.65:
        del parent[last]
    elif op < 0.75 and isinstance(parent, dict):
        new = rng.choice(["a\nb", "\x1b[2J", "x" * 300, "ok_id", "x/../y", "", "$x$"] + list(extra_keys))
        parent[new] = parent.pop(last)
    elif op < 0.82 and isinstance(parent, dict):
        parent[rng.choice(list(extra_keys))] = rng.choice(EVIL)
    elif op < 0.88:
        parent[last] = _deep(rng.choice([25, 60, 600, 601]))
    elif op < 0.94 and isinstance(parent[last], list):
        parent[last] = parent[last] * rng.choice([0, 2, 50])
    else:
        v = parent[last]
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            parent[last] = rng.choice([v * 10**rng.randint(1, 300), -v, v + 0.5, float(v), int(v) if math.isfinite(v) else 0])
        else:
            parent[last] = rng.choice(EVIL)
    return doc


def mutate_text(text: str, rng: random.Random) -> str:
    """Raw damage: truncate, flip a byte, insert or drop a line."""
    op = rng.randrange(5)
    if op == 0:
        return text[: rng.randrange(len(text))]
    lines = text.splitlines()
    i = rng.randrange(len(lines))
    if op == 1:
        pos = rng.randrange(len(text))
        return text[:pos] + chr(rng.choice([0, 7, 27, 0x7F, ord("["), ord("="), ord('"'), 0xFEFF])) + text[pos + 1:]
    if op == 2:
        del lines[i]
    elif op == 3:
        lines.insert(i, lines[i])
    else:
        lines.insert(i, rng.choice(["[" * 600 + "]" * 600, "x = " + "[" * 500 + "]" * 500, "a" + ".a" * 700 + " = 1",
                                    "extends = 'self.toml'", "[arms.x]\nn = 1e18\nevents = 1"]))
    return "\n".join(lines) + "\n"


def make_trial_case(seed: int, workdir: Path) -> Path:
    """A mutated trial file (and its curve files) in ``workdir``; returns its path."""
    rng = random.Random(seed)
    src = TRIALS[seed % len(TRIALS)]
    for c in src.parent.glob("checkmate017_curve_*.csv"):
        shutil.copy(c, workdir / c.name)
    if rng.random() < 0.15:
        text = mutate_text(src.read_text(), rng)
    else:
        doc = tomllib.loads(src.read_text())
        for _ in range(rng.randint(1, 3)):
            doc = mutate_doc(doc, rng, extra_keys=("nn", "evnts", "curve", "label", "median"))
        text = dump_toml(doc)
    if rng.random() < 0.1:
        # damage a curve file too: junk, huge, a symlink out of the directory
        c = workdir / "checkmate017_curve_docetaxel.csv"
        kind = rng.randrange(3)
        if kind == 0:
            c.write_text("time,survival\n" + "\n".join(f"{i},{rng.random()}" for i in range(rng.choice([1, 3, 6000]))))
        elif kind == 1:
            c.write_bytes(bytes(rng.randrange(256) for _ in range(200)))
        else:
            c.unlink()
            c.symlink_to("/etc/hostname")
    p = workdir / "trial.toml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    return p


def make_spec_case(seed: int, workdir: Path) -> Path:
    """A mutated run spec in ``workdir`` (absolute trial path so it stays valid)."""
    rng = random.Random(seed)
    doc = tomllib.loads(SPEC.read_text())
    doc["run"]["trial"] = str(ROOT / "data" / "raw" / "clocc_os.toml")
    if rng.random() < 0.1:
        text = mutate_text(dump_toml(doc), rng)
    else:
        for _ in range(rng.randint(1, 3)):
            doc = mutate_doc(doc, rng, extra_keys=("draw", "chain", "extends", "data", "trials", "seeds"))
        if rng.random() < 0.1:
            doc["extends"] = rng.choice(["spec.toml", "loop.toml", "/etc/passwd", "x" * 300])
            (workdir / "loop.toml").unlink(missing_ok=True)
            (workdir / "loop.toml").symlink_to(workdir / "loop.toml")
        text = dump_toml(doc)
    p = workdir / "spec.toml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    return p


# --------------------------------------------------------------------------- running


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def run_inprocess(argv: list[str], timeout: int = 60, cwd: Path | None = None) -> tuple[int, str, str]:
    """``kmbayes ARGV`` in this process (in ``cwd`` if given): (exit code, stdout, stderr).

    Any exception propagates: that is a traceback the CLI let through.
    """
    out, err = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    here = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main([str(a) for a in argv])
            except SystemExit as ex:  # argparse
                rc = ex.code if isinstance(ex.code, int) else 2
    finally:
        os.chdir(here)
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return rc, out.getvalue(), err.getvalue()


def files_under(d: Path) -> set[Path]:
    return {p for p in d.rglob("*") if p.is_file() or p.is_symlink()}


def check_refusal(rc: int, stderr: str, *, ok_codes=(0,)) -> None:
    """Exit ``ok_codes`` or 2 with one clean line under 300 characters."""
    assert rc in (*ok_codes, 2), (rc, stderr[-500:])
    if rc == 2:
        lines = stderr.splitlines()
        assert len(lines) == 1, stderr[:1000]
        assert len(lines[0]) < 300, lines[0]
        assert "\x1b" not in lines[0] and "Traceback" not in lines[0]


def check_trial_case(seed: int, workdir: Path) -> int:
    """Run ``reconstruct`` on mutant ``seed``; assert the promise; return the exit code."""
    trial = make_trial_case(seed, workdir)
    before = files_under(workdir)
    out = workdir / "out" / "ipd.csv"
    rc, _, err = run_inprocess(["reconstruct", trial, "--out", out, "--replicates", "2"])
    check_refusal(rc, err)
    new = files_under(workdir) - before
    assert all(p.is_relative_to(workdir / "out") for p in new), new  # nothing outside --out's directory
    if rc == 2:
        assert not [p for p in new if p.name != ".kmbayes.lock"], new  # a refusal writes nothing
    return rc


def check_spec_case(seed: int, workdir: Path) -> int:
    """Load mutant spec ``seed`` through ``fit`` up to (not including) sampling; assert the promise.

    ``--data`` names a missing file, so a valid spec stops with exit 2 on
    ``--data`` right before sampling; the campaign script samples them.
    """
    spec = make_spec_case(seed, workdir)
    before = files_under(workdir)
    rc, _, err = run_inprocess(["fit", "--config", spec, "--output", workdir / "out", "--fast",
                                "--data", workdir / "missing.csv"])
    check_refusal(rc, err, ok_codes=())
    new = files_under(workdir) - before
    assert not [p for p in new if p.name != ".kmbayes.lock"], new
    return rc


# --------------------------------------------------------------------------- properties


@settings(settings.get_profile(PROFILE))
@given(seed=st.integers(0, 2**32 - 1))
def test_fuzz_trial_files(seed, tmp_path_factory):
    check_trial_case(seed, tmp_path_factory.mktemp("t"))


@settings(settings.get_profile(PROFILE))
@given(seed=st.integers(0, 2**32 - 1))
def test_fuzz_run_specs(seed, tmp_path_factory):
    check_spec_case(seed, tmp_path_factory.mktemp("s"))


CLI_OPTS = ["--seed", "--replicates", "--out", "--output", "--config", "--trial", "--models", "--priors", "--data",
            "--engine"]
ARG_VALUES = ["-1", "0", "1", "2001", "1e9", "abc", "", "\x1b[31m", "a\nb", "/proc/self/x", "/dev/null",
              "x" * 300, "--", "-q", "..", "/"]


@settings(settings.get_profile(PROFILE))
@given(cmd=st.sampled_from(["reconstruct", "fit", "report", "run"]),
       opts=st.lists(st.tuples(st.sampled_from(CLI_OPTS), st.sampled_from(ARG_VALUES)), max_size=3))
def test_fuzz_cli_arguments(cmd, opts, tmp_path_factory):
    """Odd CLI arguments: refused in one line; ``--fast`` and a missing --data keep it from sampling."""
    check_cli_case(cmd, opts, tmp_path_factory.mktemp("c"))



def check_cli_case(cmd: str, opts: list[tuple[str, str]], d: Path) -> int:
    """Run ``kmbayes CMD`` with odd option values in ``d``; assert the promise; return the exit code."""
    argv = [cmd]
    if cmd == "reconstruct":
        argv += [str(TRIALS[0]), "--out", str(d / "o" / "ipd.csv")]
    elif cmd == "report":
        argv += ["--output", str(d / "o")]  # no fits there: refused before drawing anything
    else:
        argv += ["--fast", "--output", str(d / "o")]
    for k, v in opts:
        if cmd != "reconstruct" and k in ("--out", "--replicates", "--engine"):
            continue
        if cmd == "reconstruct" and k not in ("--seed", "--replicates", "--out", "--engine"):
            continue
        if cmd in ("run", "fit") and k not in ("--seed", "--output", "--config", "--models", "--priors"):
            continue
        if cmd == "report" and k not in ("--config", "--output"):
            continue
        if cmd == "fit" and k == "--seed":
            continue
        if k == "--replicates" and v.isdigit() and int(v) > 10:
            continue  # valid and slow-ish: the limits tests cover it
        argv += [k, v]
    if cmd == "run":
        argv += ["--trial", str(d / "missing.toml")]  # stops before sampling
    if cmd == "fit":
        argv += ["--data", str(d / "missing.csv")]
    before = files_under(d)
    rc, _, err = run_inprocess(argv, cwd=d)  # relative --out values land in d, never in the repository
    check_refusal(rc, err)
    new = files_under(d) - before
    if rc == 2:
        assert not [p for p in new if p.name != ".kmbayes.lock"], new
    return rc


# --------------------------------------------------------------------------- named cases from the issue


def test_known_bad_specs_are_refused(tmp_path):
    """The issue's run-spec cases, one by one: each refused naming its field."""
    base = tomllib.loads(SPEC.read_text())
    base["run"]["trial"] = str(ROOT / "data" / "raw" / "clocc_os.toml")

    def case(mutate):
        doc = copy.deepcopy(base)
        mutate(doc)
        return doc

    cases = {
        "sampler.draw": case(lambda d: d["sampler"].update(draw=100)),
        "run.trail": case(lambda d: d["run"].update(trail="x")),
        "sampler.draws": case(lambda d: d["sampler"].update(draws=10**9)),
        "sampler.chains": case(lambda d: d["sampler"].update(chains=10**6)),
        "sampler.tune": case(lambda d: d["sampler"].update(tune=2**62)),
        "priors.custom.x.sigma": case(lambda d: d["priors"].update(ids=["x"], custom={"x": {"mu": 0, "sigma": 1e300}})),
        "priors.ids": case(lambda d: d["priors"].update(ids=["x/../../../p"], custom={"x/../../../p": {"mu": 0, "sigma": 1}})),
        "models.cuts[1]": case(lambda d: d["models"].update(cuts=[0, "12", 24])),
        "models.cuts[2]": case(lambda d: d["models"].update(cuts=[0, 12, True])),
        "models.baseline.sd_log_cumhaz": case(lambda d: d["models"]["baseline"].update(sd_log_cumhaz=1e300)),
        "run.trial": case(lambda d: d["run"].pop("trial")),
    }
    for field, doc in cases.items():
        p = tmp_path / "spec.toml"
        p.write_text(dump_toml(doc))
        rc, _, err = run_inprocess(["fit", "--config", p, "--output", tmp_path / "out", "--fast",
                                    "--data", tmp_path / "missing.csv"])
        assert rc == 2, (field, err)
        assert field in err, (field, err)
        check_refusal(rc, err)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.nc"))


def test_extends_chain_and_symlink_loop(tmp_path):
    (tmp_path / "s0.toml").write_text(f'[run]\ntrial = "{ROOT / "data/raw/clocc_os.toml"}"\n')
    for i in range(1, 1200):
        (tmp_path / f"s{i}.toml").write_text(f'extends = "s{i - 1}.toml"\n')
    rc, _, err = run_inprocess(["fit", "--config", tmp_path / "s1199.toml", "--output", tmp_path / "o"])
    assert rc == 2 and "extends" in err
    check_refusal(rc, err)
    (tmp_path / "loop.toml").symlink_to(tmp_path / "loop2.toml")
    (tmp_path / "loop2.toml").symlink_to(tmp_path / "loop.toml")
    (tmp_path / "a.toml").write_text('extends = "loop.toml"\n')
    rc, _, err = run_inprocess(["fit", "--config", tmp_path / "a.toml", "--output", tmp_path / "o"])
    assert rc == 2
    check_refusal(rc, err)
    (tmp_path / "empty.toml").write_text("")
    rc, _, err = run_inprocess(["fit", "--config", tmp_path / "empty.toml", "--output", tmp_path / "o"])
    assert rc == 2
    check_refusal(rc, err)


@pytest.mark.parametrize("text", ["x = " + "[" * 500 + "]" * 500, "a" + ".a" * 700 + " = 1",
                                  "[trial]\nname = " + "{a = " * 400 + "1" + "}" * 400])
def test_deep_toml_is_refused(tmp_path, text):
    p = tmp_path / "t.toml"
    p.write_text(text)
    rc, _, err = run_inprocess(["reconstruct", p, "--out", tmp_path / "o.csv"])
    assert rc == 2 and "file" in err
    check_refusal(rc, err)


def test_messages_are_one_clean_line(tmp_path):
    """A newline or escape in an arm id, and a 200 KB value, still give one short clean line."""
    base = tomllib.loads(TRIALS[0].read_text())
    for evil in ["com\nbined", "\x1b[31mcombined", "c" * 200_000]:
        doc = copy.deepcopy(base)
        doc["arms"][evil] = doc["arms"].pop("combined")
        p = tmp_path / "t.toml"
        p.write_text(dump_toml(doc))
        rc, _, err = run_inprocess(["reconstruct", p, "--out", tmp_path / "o.csv"])
        assert rc == 2
        check_refusal(rc, err)
    doc = copy.deepcopy(base)
    doc["arms"]["combined"]["events"] = "x" * 200_000
    p.write_text(dump_toml(doc))
    rc, _, err = run_inprocess(["reconstruct", p, "--out", tmp_path / "o.csv"])
    assert rc == 2 and "arms.combined.events" in err
    check_refusal(rc, err)


def test_curve_cannot_read_outside_trial_dir(tmp_path):
    base = tomllib.loads(TRIALS[0].read_text())
    secret = tmp_path / "secret.txt"
    secret.write_text("t,s\nTOP-SECRET,1\n")
    (tmp_path / "trial").mkdir()
    (tmp_path / "trial" / "link.csv").symlink_to(secret)
    for path in [str(secret), "../secret.txt", "link.csv", "x" * 300]:
        doc = copy.deepcopy(base)
        doc["arms"]["combined"]["curve"] = path
        p = tmp_path / "trial" / "t.toml"
        p.write_text(dump_toml(doc))
        rc, _, err = run_inprocess(["reconstruct", p, "--out", tmp_path / "o.csv"])
        assert rc == 2 and "arms.combined.curve" in err, err
        assert "TOP-SECRET" not in err
        check_refusal(rc, err)


def test_out_may_not_overwrite_inputs(tmp_path):
    t = tmp_path / "t.toml"
    t.write_text(TRIALS[0].read_text())
    for out in [t, tmp_path / "t.toml" / "x.csv", Path("/proc/self/x.csv")]:
        rc, _, err = run_inprocess(["reconstruct", t, "--out", out])
        assert rc == 2 and "--out" in err, err
        check_refusal(rc, err)
    assert t.read_text() == TRIALS[0].read_text()
    (tmp_path / "file").write_text("x")
    rc, _, err = run_inprocess(["run", "--trial", t, "--output", tmp_path / "file" / "sub"])
    assert rc == 2 and "--output" in err
    rc, _, err = run_inprocess(["run", "--trial", t, "--output", "/proc/self/out", "--seed", "1"])
    assert rc == 2 and "--output" in err
    rc, _, err = run_inprocess(["run", "--trial", t, "--output", tmp_path / "o", "--seed", "-1"])
    assert rc == 2 and "--seed" in err
    assert not (tmp_path / "o").exists()
