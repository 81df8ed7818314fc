"""Runtime backends: one model, run by PyTorch, ONNX Runtime or OpenVINO behind one interface.

A backend is a callable ``net(x) -> logits``: ``x`` float32 (N, 1, S, S) in [0, 1] (grid
images, see ``echoseg.data.preprocess.image_to_grid``), logits float32 (N, 4, S, S) as a NumPy
array on the CPU. It also tells its ``runtime`` name and the ``device`` it runs on.
"""

from __future__ import annotations

import importlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from echoseg.errors import ConfigError

if TYPE_CHECKING:  # torch is imported when a backend is made: `--help` stays fast
    import torch

RUNTIMES = ("auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "int8")  # what load_model can run PyTorch weights in
PRECISION_HELP = ("fp32 | int8 (int8: PyTorch weights on ONNX Runtime or OpenVINO, quantized "
                  "once on the bundled samples and cached; default fp32)")
TTA_HELP = ("test-time augmentation: average the network's probabilities over 7 affine views "
            "of each image (echoseg.inference.tta; 7x the network time)")
# which extra of pyproject.toml installs each runtime
INSTALL_HINTS = {"onnxruntime": "pip install 'echoseg[onnx]'",
                 "openvino": "pip install 'echoseg[openvino]'"}
_DISPLAY = {"onnxruntime": "ONNX Runtime", "openvino": "OpenVINO"}


def installed(runtime: str) -> bool:
    """Whether the Python package of ``runtime`` (torch, onnxruntime, openvino) imports here."""
    try:
        importlib.import_module(runtime)
    except ImportError:
        return False
    return True


def require(runtime: str) -> None:
    """Raise ConfigError ``--runtime NAME needs ...: pip install ...`` (one line) when the
    package of ``runtime`` is not installed; returns None otherwise."""
    if runtime in INSTALL_HINTS and not installed(runtime):
        raise ConfigError(f"--runtime {runtime} needs {_DISPLAY[runtime]}: "
                          f"{INSTALL_HINTS[runtime]}")


def resolve_runtime(name: str, device: str | torch.device = "cpu") -> str:
    """The runtime that ``--runtime NAME`` means on ``device`` (cpu, cuda, cuda:N): one of
    torch, onnxruntime, openvino.

    ``auto`` is PyTorch on CUDA; on the CPU, OpenVINO when installed, else ONNX Runtime when
    installed, else PyTorch. That order follows ``echoseg bench --runtime all`` on 2 cores of
    an AMD EPYC Zen 4 (docs/performance.md): bundled lightweight model, 224², batch 1, fp32:
    OpenVINO 16.8 ms, PyTorch 50.4 ms, ONNX Runtime 61.0 ms per frame.
    An explicitly named runtime is returned as given. Raises ConfigError (one line) for
    an unknown name and for a named runtime that is not installed (saying how to install it).
    """
    text = str(name).strip()
    if text not in RUNTIMES:
        shown = text if 0 < len(text) <= 40 and text.isprintable() else repr(text[:40])
        raise ConfigError(f"--runtime {shown}: unknown runtime; valid: {', '.join(RUNTIMES)}")
    if text != "auto":
        require(text)
        return text
    if str(device).startswith("cuda"):
        return "torch"
    for candidate in ("openvino", "onnxruntime"):
        if installed(candidate):
            return candidate
    return "torch"


class TorchBackend:
    """A ``torch.nn.Module`` in eval mode on ``device``; calls run under ``no_grad``.

    On a CUDA device each new input shape is captured once as a CUDA graph and later calls of
    that shape replay it (one launch instead of one per kernel, which dominates at batch 1);
    ``cuda_graphs=False``, or a capture that fails, runs eagerly. At most ``MAX_GRAPHS`` shapes
    are kept; other shapes run eagerly.
    """

    runtime = "torch"
    MAX_GRAPHS = 4

    def __init__(self, model: torch.nn.Module, device: str | torch.device = "cpu",
                 cuda_graphs: bool = True) -> None:
        import torch

        self.torch_device = torch.device(device)
        self.device = str(self.torch_device)
        self.model = model.to(self.torch_device).eval()
        self.cuda_graphs = cuda_graphs and self.torch_device.type == "cuda"
        self._graphs: dict[tuple[int, ...], tuple | None] = {}

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits float32 (N, 4, S, S) for ``x`` float32 (N, 1, S, S) in [0, 1]."""
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        with torch.no_grad():
            graph = self._graph(tuple(tensor.shape)) if self.cuda_graphs else None
            if graph is None:
                return self.model(tensor.to(self.torch_device)).float().cpu().numpy()
            cuda_graph, static_in, static_out = graph
            static_in.copy_(tensor, non_blocking=False)
            cuda_graph.replay()
            return static_out.float().cpu().numpy()

    def _graph(self, shape: tuple[int, ...]):
        """(graph, input, output) captured for ``shape``, or None (eager) when there is no
        room for another shape or the capture failed."""
        if shape in self._graphs:
            return self._graphs[shape]
        if len(self._graphs) >= self.MAX_GRAPHS:
            return None
        import torch

        static_in = torch.zeros(shape, device=self.torch_device)
        try:
            stream = torch.cuda.Stream(self.torch_device)
            stream.wait_stream(torch.cuda.current_stream(self.torch_device))
            with torch.cuda.stream(stream):
                for _ in range(3):  # warm-up on a side stream, as capture requires
                    self.model(static_in)
            torch.cuda.current_stream(self.torch_device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = self.model(static_in)
            self._graphs[shape] = (graph, static_in, static_out)
        except RuntimeError:  # an op that cannot be captured: this shape runs eagerly
            self._graphs[shape] = None
        return self._graphs[shape]


class OnnxRuntimeBackend:
    """An ONNX file run by ONNX Runtime: on CUDA when ``device`` is a GPU and this
    onnxruntime has the CUDA provider (onnxruntime-gpu), else on the CPU with
    ``threads`` intra-op threads (0: ``torch.get_num_threads()``)."""

    runtime = "onnxruntime"

    def __init__(self, path: str | Path, device: str | torch.device = "cpu",
                 threads: int = 0) -> None:
        require("onnxruntime")
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: ORT warns about unused initializers
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        providers: list = ["CPUExecutionProvider"]
        self.device = "cpu"
        wanted = torch.device(device)
        if wanted.type == "cuda":
            if "CUDAExecutionProvider" in ort.get_available_providers():
                index = wanted.index or 0
                providers.insert(0, ("CUDAExecutionProvider", {"device_id": index}))
                self.device = f"cuda:{index}"
            else:
                warnings.warn("ONNX Runtime has no CUDA here (install onnxruntime-gpu); "
                              "running on the CPU", stacklevel=2)
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits float32 (N, 4, S, S) for ``x`` float32 (N, 1, S, S) in [0, 1]."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0]


class OpenVinoBackend:
    """An OpenVINO IR ``.xml`` (or ONNX) file compiled for the CPU with the latency hint, in
    fp32 (no bf16 on CPUs that have it, so labels match the other runtimes) and ``threads``
    threads (0: ``torch.get_num_threads()``). Always on the CPU, whatever ``--device``."""

    runtime = "openvino"
    device = "cpu"

    def __init__(self, path: str | Path, threads: int = 0) -> None:
        require("openvino")
        import openvino as ov
        import openvino.properties.hint as hints
        import torch

        config = {hints.performance_mode: hints.PerformanceMode.LATENCY,
                  hints.inference_precision: ov.Type.f32,
                  "INFERENCE_NUM_THREADS": threads or torch.get_num_threads()}
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Logits float32 (N, 4, S, S) for ``x`` float32 (N, 1, S, S) in [0, 1]."""
        self.request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
        # the request's output buffer is reused by the next call
        return self.request.get_output_tensor(0).data.copy()


Backend = TorchBackend | OnnxRuntimeBackend | OpenVinoBackend

RUNTIME_HELP = ("auto | torch | onnxruntime | openvino (default auto: PyTorch on CUDA; on the "
                "CPU OpenVINO, else ONNX Runtime, when installed)")
