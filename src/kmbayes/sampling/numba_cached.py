"""nutpie's numba backend, with everything it compiles cached on disk.

nutpie's own ``compile_pymc_model(backend="numba")`` builds two C callbacks
(``numba.cfunc``) around PyTensor's numba-compiled log density and
"expand" (deterministics) functions. PyTensor caches its part on disk, but
nutpie's callbacks use dynamic globals, so numba cannot cache them: every
process pays 5-9 s per model family to compile them again, which is what made
the numba backend unattractive for a grid of a dozen fits.

This module builds equivalent callbacks whose source is generated per family
and registered with PyTensor's numba cache locator under a key made of the
source and PyTensor's own key for the wrapped function, so a later process
loads them in ~0.02 s. Data reach the callbacks through a ``uint64`` array
(``user_data``: one data pointer per ``pm.Data`` container, then the shapes),
so a compiled family serves every prior, replicate and trial: swapping data
builds a new array of pointers, nothing is recompiled, and no PyTensor
shared variable is mutated (chains may run on several threads).

The callbacks run without the GIL on nutpie's Rust threads, which is why
this backend runs two chains in parallel in one process, where the C
backend's Python callbacks cannot.

The PyTensor functions themselves (graph rewriting and linking, ~1 s per
family) are pickled into PyTensor's compile directory. A pickle can run code
when loaded, so a file is loaded only if its SHA-256 matches the one recorded
when kmbayes wrote it, in an index kept apart from the compile directory
(``$XDG_CACHE_HOME/kmbayes/compiled-index.json``, or ``~/.cache/...``; set
``KMBAYES_COMPILE_CACHE=0`` to turn this cache off). A planted or altered
file is ignored and recompiled.

Relies on nutpie's ``CompiledPyMCModel``, its private ``_make_functions``
and cfunc signatures (checked against nutpie 0.16.11) and PyTensor's numba
cache; :func:`kmbayes.sampling.sample` falls back to nutpie's public API if
anything here fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .. import families
from ..io import atomic_path, write_text_atomic
from . import model_values, nutpie_sample

#: bump when the generated source or the user-data layout changes meaning
LAYOUT_VERSION = 2


def _intrinsics():
    import numba
    from numba.core import types
    from numba.extending import intrinsic

    def pointer_cast(target, how):
        """An intrinsic casting its argument to the pointer type ``target`` with LLVM's ``how``."""

        @intrinsic
        def cast(typingctx, src):
            sig = target(src)

            def codegen(ctx, builder, sig, args):
                return getattr(builder, how)(args[0], ctx.get_value_type(sig.return_type))

            return sig, codegen

        return cast

    return {"carray": numba.carray, "np": np,
            # user_data (void *) -> its uint64 slots; a slot (an address) -> float64 *
            "voidptr_as_u64ptr": pointer_cast(types.CPointer(types.uint64), "bitcast"),
            "u64_as_f64ptr": pointer_cast(types.CPointer(types.float64), "inttoptr")}


_GLOBALS: dict | None = None


def _globals() -> dict:
    global _GLOBALS
    if _GLOBALS is None:
        _GLOBALS = _intrinsics()
    return _GLOBALS


@dataclasses.dataclass(frozen=True)
class Layout:
    """Order and ranks of the data containers in ``user_data``."""

    names: tuple[str, ...]
    ndims: tuple[int, ...]

    @property
    def size(self) -> int:
        return len(self.names) + sum(self.ndims)

    def unpack_lines(self, wanted: list[str]) -> list[str]:
        """Source lines binding ``a<k>`` to the k-th wanted container."""
        lines = [f"    u = carray(voidptr_as_u64ptr(ud_), ({self.size},))"]
        offsets, off = {}, len(self.names)
        for name, nd in zip(self.names, self.ndims):
            offsets[name] = off
            off += nd
        for k, name in enumerate(wanted):
            i = self.names.index(name)
            o = offsets[name]
            shape = "(" + "".join(f"u[{o + j}], " for j in range(self.ndims[i])) + ")"
            lines.append(f"    a{k} = carray(u64_as_f64ptr(u[{i}]), {shape})")
        return lines

    def pack(self, values: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """``(user_data, arrays)``: ``arrays`` must outlive every use of ``user_data``."""
        arrays = {}
        for name, nd in zip(self.names, self.ndims):
            a = np.array(values[name], dtype=np.float64, order="C", copy=True)
            if a.ndim != nd:
                raise ValueError(f"data container {name!r} must have rank {nd}, got {a.ndim}")
            a.flags.writeable = False
            arrays[name] = a
        ud = np.array([arrays[n].ctypes.data for n in self.names]
                      + [s for n in self.names for s in arrays[n].shape], dtype=np.uint64)
        return ud, arrays


def _logp_source(n_dim: int, layout: Layout, wanted: list[str]) -> str:
    args = "".join(f", a{k}" for k in range(len(wanted)))
    return "\n".join([
        "def kmbayes_logp(dim, x_, out_, logp_, ud_):",
        f"    if dim != {n_dim}:",
        "        return -1",
        *layout.unpack_lines(wanted),
        f"    x = carray(x_, ({n_dim},))",
        f"    out = carray(out_, ({n_dim},))",
        "    lp = carray(logp_, (1,))",
        f"    val, grad = inner(x{args})",
        "    lp[0] = val",
        "    out[:] = grad",
        # nutpie's return codes: 3 non-finite gradient, 4 non-finite logp
        "    if not np.all(np.isfinite(out)):",
        "        return 3",
        "    if not np.isfinite(val):",
        "        return 4",
        "    return 0",
    ])


def _expand_source(n_dim: int, n_expanded: int, layout: Layout, wanted: list[str]) -> str:
    args = "".join(f", a{k}" for k in range(len(wanted)))
    return "\n".join([
        "def kmbayes_expand(dim, expanded, x_, out_, ud_):",
        f"    if dim != {n_dim} or expanded != {n_expanded}:",
        "        return -1",
        *layout.unpack_lines(wanted),
        f"    x = carray(x_, ({n_dim},))",
        f"    out = carray(out_, ({n_expanded},))",
        f"    (values,) = inner(x{args})",
        "    out[:] = values",
        "    return 0",
    ])


def _cfunc(src: str, name: str, inner, sig):
    """``numba.cfunc`` of generated source calling ``inner``; cached if ``inner`` is."""
    import numba
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS, compile_numba_function_src

    inner_key = CACHED_SRC_FUNCTIONS.get(getattr(inner, "py_func", None))
    key = None
    if inner_key is not None:
        key = "kmbayes_" + hashlib.sha256(
            f"{LAYOUT_VERSION}\n{numba.__version__}\n{inner_key}\n{src}".encode()).hexdigest()
    # __name__ lets numba rebuild the function's environment when loading it
    # from the cache (it imports the defining module).
    env = {"__name__": __name__, "inner": inner, **_globals()}
    fn = compile_numba_function_src(src, name, env, cache_key=key)
    return numba.cfunc(sig, cache=key is not None)(fn)


def initial_point_fn(pm_model):
    """PyMC's jittered initial point of the unconstrained parameters (as nutpie uses it)."""
    from pymc.initial_point import make_initial_point_fn

    return _Locked(make_initial_point_fn(
        model=pm_model, return_transformed=True, jitter_rvs=set(pm_model.free_RVs),
        default_strategy="support_point",
    ))


class _Locked:
    """``fn`` behind a lock (PyTensor functions are not re-entrant); picklable."""

    def __init__(self, fn):
        self.fn = fn
        self._lock = threading.Lock()

    def __call__(self, *args, **kwargs):
        with self._lock:
            return self.fn(*args, **kwargs)

    def __getstate__(self):
        return {"fn": self.fn}

    def __setstate__(self, state):
        self.fn = state["fn"]
        self._lock = threading.Lock()


def flat_initial_point(functions: dict):
    """``seed -> flat unconstrained vector`` from the PyMC initial-point function."""
    from nutpie.compile_pymc import _rv_dict_to_flat_array_wrapper

    names, slices, shapes = functions["shape_info"]
    free = [i for i, sl in enumerate(slices) if sl.stop <= functions["n_dim"]]
    return _rv_dict_to_flat_array_wrapper(
        functions["initial_point"], names=[names[i] for i in free], shapes=[shapes[i] for i in free])


def make_functions(pm_model, ipfn) -> dict:
    """PyTensor's numba-mode logp/gradient and expand functions for nutpie (picklable).

    ``ipfn`` is PyMC's initial-point function of ``pm_model``.
    """
    from nutpie.compile_pymc import _make_functions, _prepare_dims_and_coords

    out = _make_functions(
        pm_model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=ipfn,
    )
    n_dim, n_expanded, logp_pt, expand_pt, _, shape_info, reparam = out
    dims, coords = _prepare_dims_and_coords(pm_model, shape_info, reparam)
    for v in [*logp_pt.get_shared(), *expand_pt.get_shared()]:
        dt = getattr(v.type, "dtype", None)
        if dt != "float64":
            raise TypeError(f"data container {v.name!r} is {dt}, the numba glue handles float64 only")
    return {"n_dim": n_dim, "n_expanded": n_expanded, "logp": logp_pt, "expand": expand_pt,
            "initial_point": ipfn, "shape_info": shape_info, "dims": dims, "coords": coords}


@dataclasses.dataclass
class NumbaModel:
    """A family compiled for nutpie's numba path; :meth:`with_values` swaps data."""

    template: Any  # nutpie CompiledPyMCModel
    layout: Layout

    def with_values(self, values: dict[str, np.ndarray]):
        ud, arrays = self.layout.pack(values)
        return dataclasses.replace(self.template, shared_data=arrays, user_data=ud)


def build(functions: dict, values: dict[str, np.ndarray], initial_point) -> NumbaModel:
    """Compile (or load from numba's cache) the two callbacks of a family.

    ``functions`` from :func:`make_functions`; ``values`` the data containers'
    first values; ``initial_point`` nutpie's ``seed -> flat vector`` function.
    """
    import numba
    from nutpie.compile_pymc import CompiledPyMCModel

    logp_pt, expand_pt = functions["logp"], functions["expand"]
    n_dim, n_expanded = functions["n_dim"], functions["n_expanded"]
    logp_names = [v.name for v in logp_pt.get_shared()]
    expand_names = [v.name for v in expand_pt.get_shared()]
    by_name = {v.name: v for v in [*logp_pt.get_shared(), *expand_pt.get_shared()]}
    names = tuple(sorted(by_name))
    layout = Layout(names, tuple(int(by_name[n].type.ndim) for n in names))

    c = numba.types
    logp_sig = c.int64(c.uint64, c.CPointer(c.double), c.CPointer(c.double),
                       c.CPointer(c.double), c.voidptr)
    expand_sig = c.int64(c.uint64, c.uint64, c.CPointer(c.double), c.CPointer(c.double), c.voidptr)
    logp_c = _cfunc(_logp_source(n_dim, layout, logp_names), "kmbayes_logp",
                    logp_pt.vm.jit_fn, logp_sig)
    expand_c = _cfunc(_expand_source(n_dim, n_expanded, layout, expand_names), "kmbayes_expand",
                      expand_pt.vm.jit_fn, expand_sig)

    ud, arrays = layout.pack(values)
    template = CompiledPyMCModel(
        dims=functions["dims"], _n_dim=n_dim, _coords=functions["coords"],
        _shapes={n: tuple(s) for n, _, s in zip(*functions["shape_info"])},
        compiled_logp_func=logp_c, compiled_expand_func=expand_c, initial_point_func=initial_point,
        shared_data=arrays, shared_var_keys={}, user_data=ud, n_expanded=n_expanded,
        shape_info=functions["shape_info"], logp_func=logp_pt, expand_func=expand_pt,
    )
    return NumbaModel(template, layout)


# --------------------------------------------------------------------------- function cache

_CACHE_OFF = ("0", "false", "no", "off")


def _index_path() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "kmbayes" / "compiled-index.json"


def _read_index() -> dict:
    try:
        doc = json.loads(_index_path().read_text())
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def cache_file(model: str, cuts, values: dict) -> Path | None:
    """Where a family's compiled functions are kept (None: cache off).

    The key holds everything the compiled graph depends on: the family, its
    cut points, the source of the fitting modules and families, package
    versions, PyTensor's flags and the ranks of the data containers.
    """
    if os.environ.get("KMBAYES_COMPILE_CACHE", "1").strip().lower() in _CACHE_OFF:
        return None
    try:
        import cloudpickle
        import nutpie
        import pymc
        import pytensor

        from ..provenance import code_hash, package_version, sha

        doc = {
            "model": model,
            "layout": LAYOUT_VERSION,
            "cuts": None if cuts is None else [str(c) for c in cuts],
            "code": code_hash(),
            "versions": [platform.python_version(), np.__version__, pymc.__version__,
                         pytensor.__version__, nutpie.__version__, cloudpickle.__version__,
                         package_version("numba")],
            "pytensor": [pytensor.config.floatX, pytensor.config.mode, pytensor.config.linker,
                         os.environ.get("PYTENSOR_FLAGS", "")],
            "values": {k: [str(v.dtype), int(v.ndim)] for k, v in sorted(values.items())},
        }
        root = Path(pytensor.config.compiledir) / "kmbayes"
    except Exception:
        return None
    return root / f"{model}-{sha(json.dumps(doc, sort_keys=True))[:32]}.pkl"


def load_functions(path: Path | None, values: dict) -> dict | None:
    """The pickled functions at ``path``, only if their hash is the one kmbayes recorded."""
    if path is None or not path.exists():
        return None
    import pickle

    from ..provenance import file_sha

    try:
        if _read_index().get(str(path)) != file_sha(path):
            return None  # not written by kmbayes, or altered since: never unpickled
        with open(path, "rb") as fh:
            f = pickle.load(fh)
        shared = {v.name for v in [*f["logp"].get_shared(), *f["expand"].get_shared()]}
        if not shared <= set(values):  # a container nothing would fill: compile afresh
            return None
        return f
    except Exception:  # unreadable or from an incompatible build: compile afresh
        with contextlib.suppress(OSError):
            path.unlink()
        return None


def save_functions(path: Path | None, functions: dict) -> None:
    if path is None:
        return
    try:
        import cloudpickle

        from ..provenance import sha

        blob = cloudpickle.dumps(functions)
        with atomic_path(path) as tmp:
            tmp.write_bytes(blob)
        index = _read_index()
        cutoff = time.time() - 30 * 86400
        for old in path.parent.glob("*.pkl"):  # entries of older code versions are never read again
            if old != path and old.stat().st_mtime < cutoff:
                old.unlink()
                index.pop(str(old), None)
        index[str(path)] = sha(blob)
        _index_path().parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(_index_path(), json.dumps(index, indent=1, sort_keys=True))
    except Exception:  # the cache is an optimisation; never fail a fit for it
        pass


# --------------------------------------------------------------------------- sampling

_COMPILED: dict[tuple, NumbaModel] = {}


def reset() -> None:
    _COMPILED.clear()


def compiled(model, data, prior, cuts, baseline) -> NumbaModel:
    """The family compiled once per process, family and cut points (loaded from disk when cached)."""
    fam = families.get(model)
    key = (model, tuple(cuts) if fam.uses_cuts else None)
    if key not in _COMPILED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = model_values(model, data, prior, cuts, baseline)
            path = cache_file(model, key[1], values)
            functions = load_functions(path, values)
            if functions is None:
                pm_model = fam.build(data, prior, cuts=cuts, baseline=baseline)
                functions = make_functions(pm_model, initial_point_fn(pm_model))
                save_functions(path, functions)
            _COMPILED[key] = build(functions, values, flat_initial_point(functions))
    return _COMPILED[key]


def sample(model, data, prior, cuts, baseline, settings, seed):
    """nutpie on the cached callbacks; the chains run as parallel threads (no GIL)."""
    c = compiled(model, data, prior, cuts, baseline)
    c = c.with_values(model_values(model, data, prior, cuts, baseline))
    return nutpie_sample(c, settings, seed)
