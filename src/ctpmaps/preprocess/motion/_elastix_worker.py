"""Elastix in a child process (run as a script by `ctpmaps.preprocess.motion.elastix`).

Loading itk's elastix module makes a process about 0.8 GB larger (SWIG libraries; 1 GB
when itk also imports torch, which this worker prevents) and takes seconds. In a child process that
memory is returned as soon as the registrations are done, instead of staying with the
pipeline through the filter and the perfusion fit; an elastix crash cannot take the
pipeline down either.

The process loads itk as soon as it starts, so the parent can start it before it knows
what to register (the load then runs while the parent screens the frames).

Protocol (pickles; requests on stdin, replies on the original stdout, whose descriptor is
moved away first so that what elastix prints goes to stderr); end of input at any point
ends the process:

1. setup ``{"fixed": (z, y, x) float32, "mask": (z, y, x) uint8 or None, "spacing": (3,),
   "pmap": {name: [str, ...]}, "workers": int, "elastix_threads": int}`` -> ``("ready", None)``
2. ``[(frame, moving (z, y, x) float32), ...]`` -> ``("ok", [(frame, {name: [str, ...]})])``
   with the transform parameter map of each frame, or ``("error", message)``
3. ``None``: exit.

Each worker thread builds its fixed image, mask and parameter object once and reuses them
for all its frames.
"""

from __future__ import annotations

import os
import pickle
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

KEYS = ("TransformParameters", "CenterOfRotationPoint", "ComputeZYX", "Transform")


def serve(inp, out) -> None:
    _skip_array_libraries()
    import itk

    itk.ParameterObject.New()  # the lazy load happens here, before "ready"
    try:
        setup = pickle.load(inp)
    except EOFError:  # the parent had nothing to register
        return
    if setup is None:
        return
    _send(out, ("ready", None))
    local = threading.local()

    def image(array):
        img = itk.image_view_from_array(array)
        img.SetSpacing([float(s) for s in setup["spacing"]])
        img.SetOrigin([0.0, 0.0, 0.0])
        return img

    def one(item):
        k, moving = item
        if not hasattr(local, "fixed"):
            local.fixed = image(setup["fixed"])
            local.params = itk.ParameterObject.New()
            local.params.AddParameterMap({key: list(v) for key, v in setup["pmap"].items()})
            mask = setup["mask"]
            local.mask = {} if mask is None else {"fixed_mask": image(mask)}
        _, tp = itk.elastix_registration_method(
            local.fixed,
            image(moving),
            parameter_object=local.params,
            log_to_console=False,
            number_of_threads=setup["elastix_threads"],
            **local.mask,
        )
        pm = tp.GetParameterMap(0)
        return k, {key: [str(v) for v in pm[key]] for key in KEYS if key in pm}

    with ThreadPoolExecutor(max_workers=setup["workers"]) as pool:
        while (request := pickle.load(inp)) is not None:
            try:
                _send(out, ("ok", list(pool.map(one, request))))
            except Exception as exc:  # reported to the parent, which raises
                _send(out, ("error", f"{type(exc).__name__}: {exc}"))


def _skip_array_libraries() -> None:
    """Keep itk from importing torch, xarray and dask.distributed in this process.

    itk's wrappers import them (when installed) to accept their arrays; this process only
    passes numpy arrays, and torch alone adds about 250 MB. itk's private flags: if a
    future itk renames them this does nothing and the libraries load as before.
    """
    try:
        import itk.support.helpers as helpers

        helpers._HAVE_TORCH = False
        helpers._HAVE_XARRAY = False
    except ImportError:
        pass
    sys.modules.setdefault("distributed", None)  # an ImportError for itk's optional hook


def _send(out, message) -> None:
    pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
    out.flush()


def main() -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # elastix's own prints go to stderr, not into the replies
    serve(sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
