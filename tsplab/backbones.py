"""Video encoders (torchvision ``VideoResNet``), their weights, and the clip transform that feeds them.

Backbones (all map a normalized float clip ``[B, 3, T, H, W]`` to a feature ``[B, feature_dim]``):

- ``r2plus1d_18``, ``r3d_18``: torchvision's, 512-d. TSP Table 2 compares these with R(2+1)D-34.
- ``r2plus1d_34``: the R(2+1)D-34 that TSP pretrains (TSP sec. 4, Tables 1-3), laid out like the IG65M
  port TSP initialises from: BasicBlock [3, 4, 6, 3], R(2+1)D stem, each factorized conv sized from its
  own input and output widths (see ``r2plus1d_midplanes``), BatchNorm eps 1e-3. 512-d.
- ``r2plus1d_tiny``: the same family cut down for CPUs (widths 16-128, one block per stage, 128-d),
  for 8-frame clips on 32x32-112x112 frames: the synthetic benchmark's encoder.

Every backbone has ``fc = nn.Identity()`` and attributes ``feature_dim`` and ``name``.

Weights (``load_backbone_weights``): ``"kinetics400"`` through torchvision's weights API (the hub
cache first; offline, a clear error naming the URL and the path to put the file at), or a checkpoint
file: TSP's released checkpoints and ours keep the backbone under ``features.`` in ``ckpt["model"]``
beside the heads (``fc.*``, ``fc1.*``, ...), which are dropped; a bare backbone state dict works too.

Checkpoint files are found and read by ``tsplab.checkpoints`` (the safe loader); ``checkpoint_settings``
here says which backbone and clip settings a loaded checkpoint was trained with.
"""
from __future__ import annotations

import hashlib
import math
import re
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models.video import R2Plus1D_18_Weights, R3D_18_Weights, r2plus1d_18, r3d_18
from torchvision.models.video.resnet import BasicBlock, Conv2Plus1D, R2Plus1dStem, VideoResNet

from tsplab.errors import InputError
from tsplab.checkpoints import load_checkpoint_file
from tsplab.runs import atomic_path

BACKBONES = ("r2plus1d_18", "r3d_18", "r2plus1d_34", "r2plus1d_tiny")

# Kinetics-400 statistics of torchvision's video models, also used by TSP's train.py.
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)

_KINETICS_WEIGHTS = {
    "r2plus1d_18": R2Plus1D_18_Weights.KINETICS400_V1,
    "r3d_18": R3D_18_Weights.KINETICS400_V1,
}
# What TSP initialised R(2+1)D-34 from (IG65M pretraining, Kinetics fine-tuning; TSP sec. 4).
R2PLUS1D_34_KINETICS_URL = (
    "https://github.com/moabitcoin/ig65m-pytorch/releases/download/v1.0.0/"
    "r2plus1d_34_clip8_ft_kinetics_from_ig65m-0aa0550b.pth"
)
TINY_WIDTHS = (16, 32, 64, 128)


# --------------------------------------------------------------------------------------- architectures
def r2plus1d_midplanes(in_planes: int, out_planes: int, t: int = 3, d: int = 3) -> int:
    """Width of the hidden layer of a (2+1)D conv: the number of channels that gives the spatial
    ``1 x d x d`` + temporal ``t x 1 x 1`` pair as many parameters as the full ``t x d x d`` 3D conv
    (Tran et al. 2018, R(2+1)D, sec. 3.5: M = floor(t d^2 N_in N_out / (d^2 N_in + t N_out)))."""
    return (t * d * d * in_planes * out_planes) // (d * d * in_planes + t * out_planes)


class Conv2Plus1DOwnMidplanes(Conv2Plus1D):
    """A (2+1)D conv whose hidden width comes from its *own* input and output widths.

    torchvision's ``BasicBlock`` sizes both convs of a block from the block's input width, so in the
    first block of a stage (64 -> 128 say) its second conv (128 -> 128) gets the hidden width of a
    64 -> 128 conv. The IG65M port that TSP builds R(2+1)D-34 from (TSP's ``models/backbone.py``)
    recomputes it per conv, and its weights only load into that layout, so the width passed in by
    ``BasicBlock`` is ignored here.
    """

    def __init__(self, in_planes: int, out_planes: int, midplanes: int | None = None, stride: int = 1,
                 padding: int = 1) -> None:
        super().__init__(in_planes, out_planes, r2plus1d_midplanes(in_planes, out_planes), stride, padding)


class _TinyStem(nn.Sequential):
    """R(2+1)D stem (spatial 1x7x7 conv with stride 2, then temporal 3x1x1), narrow. The hidden
    width keeps torchvision's stem ratio 45/64."""

    def __init__(self, out_planes: int) -> None:
        mid = max(4, round(out_planes * 45 / 64))
        super().__init__(
            nn.Conv3d(3, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2), padding=(0, 3, 3), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_planes, kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False),
            nn.BatchNorm3d(out_planes),
            nn.ReLU(inplace=True),
        )


class NarrowVideoResNet(VideoResNet):
    """A ``VideoResNet`` with chosen stage widths (torchvision's constructor fixes 64-512).

    Same stem/stage/pool structure and the same initialisation as torchvision's, so it shares
    ``forward`` and the state-dict key names (``stem.*``, ``layer1.*`` ...) with the full-size nets.
    Output: ``[B, widths[-1]]`` (``fc`` is the identity).
    """

    def __init__(self, widths=TINY_WIDTHS, layers=(1, 1, 1, 1)) -> None:
        nn.Module.__init__(self)  # VideoResNet.__init__ would build the 64-512 layout first
        if len(widths) != 4 or len(layers) != 4:
            raise ValueError(f"widths and layers need 4 entries (one per stage), got {widths}, {layers}")
        self.inplanes = widths[0]
        self.stem = _TinyStem(widths[0])
        self.layer1 = self._make_layer(BasicBlock, Conv2Plus1DOwnMidplanes, widths[0], layers[0], stride=1)
        self.layer2 = self._make_layer(BasicBlock, Conv2Plus1DOwnMidplanes, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(BasicBlock, Conv2Plus1DOwnMidplanes, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(BasicBlock, Conv2Plus1DOwnMidplanes, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool3d((1, 1, 1))
        self.fc = nn.Identity()
        for m in self.modules():  # torchvision VideoResNet's initialisation
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)


def _r2plus1d_34() -> VideoResNet:
    model = VideoResNet(block=BasicBlock, conv_makers=[Conv2Plus1DOwnMidplanes] * 4, layers=[3, 4, 6, 3],
                        stem=R2Plus1dStem)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm3d):
            # The IG65M weights come from Caffe2 (VMZ), whose BN eps is 1e-3. TSP also sets
            # momentum = 0.9 here, meaning to copy Caffe2's 0.9; in PyTorch's convention that weights
            # the *new* batch by 0.9 (Caffe2's 0.9 is PyTorch's 0.1). We keep what TSP ran, since
            # it shapes the running statistics its released encoders were selected with.
            m.eps = 1e-3
            m.momentum = 0.9
    return model


def build_backbone(name: str, *, weights=None, trust_pickle: bool = False) -> nn.Module:
    """A backbone by name (one of ``BACKBONES``), randomly initialised unless ``weights`` is given
    (anything ``load_backbone_weights`` accepts: ``"kinetics400"``, a checkpoint path, a state dict;
    ``trust_pickle``: see ``load_checkpoint_file``).

    Returns a ``VideoResNet`` mapping float ``[B, 3, T, H, W]`` (normalized with ``ClipTransform``) to
    ``[B, feature_dim]``.
    """
    if name == "r2plus1d_18":
        model, dim = r2plus1d_18(weights=None), 512
    elif name == "r3d_18":
        model, dim = r3d_18(weights=None), 512
    elif name == "r2plus1d_34":
        model, dim = _r2plus1d_34(), 512
    elif name == "r2plus1d_tiny":
        model, dim = NarrowVideoResNet(TINY_WIDTHS, (1, 1, 1, 1)), TINY_WIDTHS[-1]
    else:
        raise InputError(f"unknown backbone {name!r}; valid names: {', '.join(BACKBONES)}")
    model.fc = nn.Identity()
    model.feature_dim = dim
    model.name = name
    if weights is not None:
        load_backbone_weights(model, weights, trust_pickle=trust_pickle)
    return model


# -------------------------------------------------------------------------------------------- weights
def load_backbone_weights(backbone: nn.Module, source, *, download_timeout_s: float = 10.0,
                          trust_pickle: bool = False) -> nn.Module:
    """Load weights into ``backbone`` (built by ``build_backbone``) in place and return it.

    ``source``:
    - ``"kinetics400"``: torchvision's Kinetics-400 weights for ``r2plus1d_18`` / ``r3d_18``, read
      from ``torch.hub.get_dir()/checkpoints/<file>`` when there, else downloaded (``download_timeout_s``
      per network operation). Offline this fails at once, naming the URL and where to put the file.
    - a checkpoint path (``torch.save`` file): ``{"model": state_dict, ...}`` with the backbone under
      ``features.`` (TSP's released checkpoints and ours; head keys are dropped), or a bare backbone
      state dict (a classifier ``fc.*`` is dropped, as the backbone's ``fc`` is the identity). Read
      with the safe loader (``load_checkpoint_file``; ``trust_pickle`` is passed on to it).
    - a state dict already in memory, read the same way.

    Backbone keys are matched strictly: any missing, unexpected or wrongly shaped key raises a
    ``tsplab.errors.InputError`` that names them.
    """
    name = getattr(backbone, "name", type(backbone).__name__)
    if isinstance(source, str) and source == "kinetics400":
        state, origin = _kinetics400_state_dict(name, download_timeout_s), f"kinetics400 weights of {name}"
    elif isinstance(source, Mapping):
        state, origin = source, "the given state dict"
    elif isinstance(source, (str, Path)):
        state, origin = load_checkpoint_file(Path(source), trust_pickle=trust_pickle), str(source)
    else:
        raise TypeError(f"weights source must be 'kinetics400', a checkpoint path or a state dict, "
                        f"got {type(source).__name__}")
    state = backbone_state_dict(state, origin)
    _check_keys(backbone, state, origin, name)
    # strict=False only forgives missing BN ``num_batches_tracked`` counters (files converted from
    # other frameworks may lack them; they matter only when BN momentum is None); every other key
    # was checked above.
    backbone.load_state_dict(state, strict=False)
    return backbone


def backbone_state_dict(checkpoint: Mapping, origin: str = "checkpoint") -> dict:
    """The backbone's own keys out of a checkpoint: ``checkpoint["model"]`` if present; keys under
    ``features.`` with the prefix stripped when any exist (heads dropped); otherwise the keys as they
    are minus a classifier ``fc.*``. A ``module.`` prefix (a model saved while wrapped in DDP) is
    removed first."""
    if not isinstance(checkpoint, Mapping):
        raise InputError(f"{origin}: expected a state dict or a checkpoint dict, "
                         f"got {type(checkpoint).__name__}")
    state = checkpoint.get("model", checkpoint)
    if not isinstance(state, Mapping):
        raise InputError(f"{origin}: 'model' entry is a {type(state).__name__}, not a state dict")
    state = {_strip(k, "module."): v for k, v in state.items() if torch.is_tensor(v)}
    if not state:
        raise InputError(f"{origin}: holds no tensors (keys: {_short_list(checkpoint.keys())})")
    if any(k.startswith("features.") for k in state):
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def kinetics400_weights_path(name: str) -> tuple[str, Path]:
    """``(url, cache path)`` of torchvision's Kinetics-400 weights for backbone ``name``: the file
    torchvision's weights API downloads to ``torch.hub.get_dir()/checkpoints/``."""
    if name not in _KINETICS_WEIGHTS:
        if name == "r2plus1d_34":
            raise InputError(
                "r2plus1d_34 has no torchvision Kinetics-400 weights. TSP starts from the IG65M model "
                f"fine-tuned on Kinetics: download {R2PLUS1D_34_KINETICS_URL} and pass the file's path "
                "as the weights source")
        raise InputError(f"no Kinetics-400 weights for backbone {name!r}; torchvision has them for "
                         f"{', '.join(_KINETICS_WEIGHTS)}")
    url = _KINETICS_WEIGHTS[name].url
    return url, Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def _kinetics400_state_dict(name: str, timeout_s: float) -> dict:
    url, path = kinetics400_weights_path(name)
    if not path.is_file():
        try:
            _download(url, path, timeout_s)
        except OSError as exc:  # URLError, timeouts, refused connections are all OSErrors
            raise RuntimeError(
                f"cannot download the Kinetics-400 weights of {name} ({exc}). Offline, download\n  {url}\n"
                f"on a machine with network access and put the file at\n  {path}") from exc
    return load_checkpoint_file(path)


def _download(url: str, dst: Path, timeout_s: float) -> None:
    """Download ``url`` to ``dst`` atomically, checking the sha256 prefix torchvision puts in its
    file names (``name-<hash>.pth``)."""
    from tqdm.auto import tqdm

    match = re.search(r"-([a-f0-9]{6,})\.", dst.name)
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout_s) as response, atomic_path(dst) as tmp:
        total = int(response.headers.get("Content-Length") or 0) or None
        with open(tmp, "wb") as f, tqdm(total=total, unit="B", unit_scale=True, desc=dst.name) as bar:
            while chunk := response.read(1 << 20):
                f.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        if match and not digest.hexdigest().startswith(match.group(1)):
            raise OSError(f"{url}: downloaded file's sha256 does not start with {match.group(1)}")


def checkpoint_settings(checkpoint: dict, path) -> dict:
    """What a loaded checkpoint says about how it was trained: ``backbone`` and the clip settings
    found in its ``config`` (missing ones absent). TSP's released files carry no config but start
    their name with the backbone (``r2plus1d_34-tsp_on_activitynet-...pth``), which is used then."""
    config = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    config = config if isinstance(config, dict) else {}
    out = {}
    aliases = dict(backbone=("backbone", "backbone_name"), clip_length_frames=("clip_length_frames",),
                   frame_rate=("frame_rate", "clip_frame_rate"),
                   short_side=("short_side", "resize_short_side"), crop_size=("crop_size",))
    for name, keys in aliases.items():
        for key in keys:
            value = _find_key(config, key)
            if value is not None:
                out[name] = value
                break
    prefix = Path(path).name.split("-")[0]
    if "backbone" not in out and prefix in BACKBONES:
        out["backbone"] = prefix
    return out


def _find_key(tree, key):
    """The first value stored under ``key`` anywhere in a nested dict (configs nest sub-configs)."""
    if isinstance(tree, dict):
        if key in tree and not isinstance(tree[key], dict):
            return tree[key]
        for value in tree.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def _check_keys(backbone: nn.Module, state: Mapping, origin: str, name: str) -> None:
    expected = backbone.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if not (missing or unexpected or shapes):
        return
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys: {_short_list(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_short_list(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches (checkpoint vs model): {_short_list(shapes)}")
    hint = ""
    if len(missing) + len(shapes) >= len(expected) // 2:
        hint = " Is it a checkpoint of another backbone?"
    raise InputError(f"{origin}: weights do not fit backbone {name}: " + "; ".join(problems) + "." + hint)


def _short_list(items, limit: int = 5) -> str:
    items = [str(i) for i in items]
    more = f", ... (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix):] if key.startswith(prefix) else key


# ------------------------------------------------------------------------------------------ transform
@dataclass
class ClipTransform:
    """uint8 clips ``[B, T, H, W, 3]`` -> normalized float ``[B, 3, T, crop, crop]`` on the same device.

    Resize so the short side is ``resize_short_side`` (bilinear, aspect kept; ``None`` or already that
    size: no resize), then in training a random crop and a random horizontal flip per clip, in
    evaluation a centre crop; then Kinetics normalization. TSP sec. 4: short side 128, crop 112.
    (TSP's code resizes to a fixed 128x171; we follow the paper's text and keep the aspect ratio.
    ``fixed_size=(128, 171)`` does what TSP's extractor does instead: that size whatever the aspect
    ratio, then its centre crop, which rounds the offset ``(size - crop) / 2`` half to even.)
    Runs on whatever device the batch is on, so the uint8 batch can be moved to the GPU first.

    Every random choice is drawn once per clip and applied to all its frames (temporally consistent).
    In training, optionally (off by default; PAL's augmentation, ``tsplab.pretrain.methods.pal``): colour
    jitter with probability ``jitter_p`` (brightness, contrast and saturation factors in
    ``1 +- jitter_strength``, in that order) and a Gaussian blur with probability ``blur_p`` (sigma
    0.1-2 at 224 px, scaled to the crop): MoCo v2's strengths, without hue jitter.
    """

    resize_short_side: int | None
    crop_size: int
    train: bool
    mean: tuple = KINETICS_MEAN
    std: tuple = KINETICS_STD
    jitter_strength: float = 0.0
    jitter_p: float = 0.0
    blur_p: float = 0.0
    fixed_size: tuple | None = None  # (height, width): resize to it, aspect not kept (TSP's extractor)

    def __call__(self, clips: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``generator`` (a CPU ``torch.Generator``) makes the crops, flips and colours reproducible."""
        if not torch.is_tensor(clips) or clips.ndim != 5 or clips.shape[-1] != 3:
            shape = tuple(clips.shape) if hasattr(clips, "shape") else type(clips).__name__
            raise ValueError(f"ClipTransform expects a uint8 tensor [B, T, H, W, 3], got {shape}")
        x = self._resized(clips)  # [B, T, 3, h, w] in [0, 1]
        b, _, _, h, w = x.shape
        c = self.crop_size
        if c > h or c > w:
            raise ValueError(f"crop_size {c} is larger than the resized frames {h}x{w} "
                             f"(resize_short_side={self.resize_short_side})")
        if self.train:
            # Draw order (crops, flips, then colours) is part of a run's reproducibility.
            tops = torch.randint(0, h - c + 1, (b,), generator=generator).tolist()
            lefts = torch.randint(0, w - c + 1, (b,), generator=generator).tolist()
            flips = torch.rand(b, generator=generator) < 0.5
            x = torch.stack([x[i, :, :, y0:y0 + c, x0:x0 + c] for i, (y0, x0) in enumerate(zip(tops, lefts))])
            x = torch.where(flips.to(x.device)[:, None, None, None, None], x.flip(-1), x)
            if self.jitter_p > 0 or self.blur_p > 0:
                x = self._colour_and_blur(x, generator)
        else:
            y0, x0 = ((round((h - c) / 2), round((w - c) / 2)) if self.fixed_size
                      else ((h - c) // 2, (w - c) // 2))
            x = x[:, :, :, y0:y0 + c, x0:x0 + c]
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device)[:, None, None]
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device)[:, None, None]
        x = (x - mean) / std
        return x.permute(0, 2, 1, 3, 4).contiguous()  # [B, 3, T, c, c]

    def _resized(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, T, H, W, 3]`` -> float ``[B, T, 3, h, w]`` in [0, 1], short side resized."""
        b, t, h, w, _ = clips.shape
        x = clips.permute(0, 1, 4, 2, 3).reshape(b * t, 3, h, w).float().div_(255)
        if self.fixed_size is not None:
            if (h, w) != tuple(self.fixed_size):
                h, w = self.fixed_size
                x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=False)
        elif self.resize_short_side is not None and min(h, w) != self.resize_short_side:
            side = self.resize_short_side
            h, w = (side, round(w * side / h)) if h <= w else (round(h * side / w), side)
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=False)
        return x.reshape(b, t, 3, h, w)

    def _colour_and_blur(self, x: torch.Tensor, generator) -> torch.Tensor:
        """Colour jitter and blur of cropped clips ``[B, T, 3, c, c]``, one draw per clip."""
        b, c = x.shape[0], x.shape[-1]
        jitter = (torch.rand(b, generator=generator) < self.jitter_p).tolist()
        factors = 1 + self.jitter_strength * (2 * torch.rand(b, 3, generator=generator) - 1)
        blur = (torch.rand(b, generator=generator) < self.blur_p).tolist()
        sigmas = (0.1 + 1.9 * torch.rand(b, generator=generator)) * c / 224
        out = []
        for i in range(b):
            v = x[i]  # [T, 3, c, c]
            if jitter[i]:
                v = _colour_jitter(v, *factors[i].tolist())
            if blur[i] and float(sigmas[i]) > 0.05:
                v = _gaussian_blur(v, float(sigmas[i]))
            out.append(v)
        return torch.stack(out)


_GRAY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, torchvision's rgb_to_grayscale


def _colour_jitter(v: torch.Tensor, brightness: float, contrast: float, saturation: float) -> torch.Tensor:
    """Brightness, contrast (about the clip's mean gray), saturation (against each pixel's gray) of
    ``[T, 3, H, W]`` frames in [0, 1], clamped to [0, 1] after each step."""
    gray_w = torch.tensor(_GRAY_WEIGHTS, device=v.device).view(1, 3, 1, 1)
    v = (v * brightness).clamp(0, 1)
    mean_gray = (v * gray_w).sum(1, keepdim=True).mean()
    v = ((v - mean_gray) * contrast + mean_gray).clamp(0, 1)
    gray = (v * gray_w).sum(1, keepdim=True)
    return (gray + (v - gray) * saturation).clamp(0, 1)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[T, 3, H, W]`` (every frame with the same ``sigma``)."""
    radius = max(1, int(math.ceil(2 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
