"""A third-party plugin, installed as a distribution with entry points, adds one backbone kind,
one source form, one stage kind, one index type and one head — with no change to embedpipe.

The distribution is built in a temp folder (a module plus a ``.dist-info`` with
``entry_points.txt``) and put on ``PYTHONPATH``; ``importlib.metadata`` finds its entry points
as it finds any installed package's. Each kind is then used through the CLI and through a
pipeline file, in one fresh process that runs the commands one after the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

PLUGIN = '''
"""embedpipe_toyplugin: one of each extension point, for embedpipe's plugin test."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from embedpipe.backbones.base import BackboneSpec
from embedpipe.backbones.kind import BackboneKind, register_backbone_kind
from embedpipe.data import ArraySource
from embedpipe.data.forms import SourceForm, register_source_form
from embedpipe.heads.registry import register_head
from embedpipe.index.kinds import IndexType, register_index_type
from embedpipe.pipeline.kinds import Params, Role, register_stage_kind as register_stage

FEATURES = "abcdefghijklmnopqrstuvwxyz0123456789 !?.,"


class CharStats:
    """A text encoder: the frequency of each of 41 characters (deterministic, no model)."""

    dim = len(FEATURES)
    modality = "text"
    device = torch.device("cpu")
    precision = "fp32"

    def __init__(self, spec):
        self.spec = spec

    @property
    def fingerprint(self):
        return self.spec.fingerprint()

    def preprocess(self, item):
        if not isinstance(item, str):
            raise TypeError(f"expected a text, got {type(item).__name__}")
        return item

    def collate(self, samples):
        return list(samples)

    def encode(self, batch):
        out = np.zeros((len(batch), self.dim), np.float32)
        for r, text in enumerate(batch):
            for ch in text.lower():
                k = FEATURES.find(ch)
                if k >= 0:
                    out[r, k] += 1.0
            out[r] /= max(1.0, float(np.linalg.norm(out[r])))
        return torch.from_numpy(out)

    def to(self, device, precision="fp32"):
        return self


def load(target, **kwargs):
    return CharStats(BackboneSpec("charstats", str(target), weights_id="charstats-v1",
                                  pooling="none", modality="text"))


def from_spec(spec, **overrides):
    return CharStats(spec)


register_backbone_kind(BackboneKind("charstats", "charstats", load=load, from_spec=from_spec,
                           placeholder="<any>", example="charstats:v1",
                           description="character frequencies (toy plugin)"))


@register_source_form("lines")
class LinesForm(SourceForm):
    scheme = "lines"
    help = "'lines:FILE' (one 'label<TAB>text' per line; toy plugin)"

    def open(self, target, options):
        rows = [ln.split("\\t", 1) for ln in Path(target).read_text().splitlines() if ln]
        return ArraySource([t for _, t in rows], labels=[lab for lab, _ in rows],
                           ids=[f"line-{k}" for k in range(len(rows))])


@register_index_type
class ExactIP(IndexType):
    name = "exact_ip"
    description = "exhaustive inner-product search (toy plugin)"

    def factory(self, n, dim, **options):
        return "Flat"

    def estimate(self, n, dim, **options):
        return n * dim * 4


register_head("centroid_toy", "sklearn.neighbors:NearestCentroid",
              "nearest class mean (toy plugin)")


class CountParams(Params):
    min_chars: int = 0


@register_stage("count", version=1, params=CountParams,
                inputs={"features": Role(("encode",))}, describe=lambda p: f">={p.min_chars}")
def run_count(ctx):
    from embedpipe.store import FeatureStore

    with FeatureStore(ctx.require("features").file("store")) as fs:
        n = len(fs)
    (ctx.out / "count.json").write_text(json.dumps({"rows": n}))
    return {"count": "count.json", "rows": n}
'''

ENTRY_POINTS = """\
[embedpipe.backbones]
charstats = embedpipe_toyplugin

[embedpipe.sources]
lines = embedpipe_toyplugin

[embedpipe.stages]
count = embedpipe_toyplugin

[embedpipe.indexes]
exact_ip = embedpipe_toyplugin

[embedpipe.heads]
centroid_toy = embedpipe_toyplugin
"""

TEXTS = {
    "loud": ["WOW!!! AMAZING!!!", "YES! YES! YES!", "HUGE!!! BIG!!!", "GO GO GO!!!"],
    "calm": [
        "a quiet walk by the river",
        "slow tea in the morning",
        "the calm of evening",
        "a soft rain on the roof",
    ],
}


PIPELINE = """\
name: plugin
datasets:
  toy: {source: "lines:train.txt"}
stages:
  embed:
    kind: encode
    dataset: toy
    params: {backbone: "charstats:v1"}
  head:
    kind: train
    inputs: {train: embed}
    params: {head: centroid_toy, preprocess: none}
  idx:
    kind: index
    inputs: {features: embed}
    params: {type: exact_ip}
  rows:
    kind: count
    inputs: {features: embed}
    params: {min_chars: 1}
"""

#: The commands both tests check, run in order by one fresh process (see :func:`plugin_cli`).
COMMANDS = [
    ["backbones"],
    ["heads"],
    ["encode", "--data", "lines:train.txt", "--backbone", "charstats:v1", "--out", "s.h5", "-q"],
    ["train", "--store", "s.h5", "--head", "centroid_toy", "--out", "head"],
    ["index", "s.h5", "--out", "idx", "--kind", "exact_ip"],
    ["search", "idx", "--query", "AMAZING!!! WOW!!!", "-k", "2", "--json"],
    ["run", "p.yaml", "--cache", "c", "-q"],
    ["dag", "p.yaml"],
]

#: Runs each command through the CLI's entry point in this (fresh) process, which finds the
#: plugin through its entry points; writes each command's exit code and output as JSON.
DRIVER = """\
import contextlib, io, json, sys
from embedpipe.cli import main
results = []
for argv in json.loads(sys.argv[1]):
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    results.append({"argv": argv, "code": code, "out": out.getvalue(), "err": err.getvalue()})
with open(sys.argv[2], "w") as f:
    json.dump(results, f)
"""


@pytest.fixture(scope="module")
def plugin_cli(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The plugin installed as a distribution, and the stdout of each of :data:`COMMANDS`
    (asserted to have succeeded), run in one fresh process (one start instead of eight)."""
    root = tmp_path_factory.mktemp("plugin")
    site = root / "site"
    site.mkdir()
    (site / "embedpipe_toyplugin.py").write_text(PLUGIN)
    info = site / "embedpipe_toyplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: embedpipe-toyplugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    lines = [f"{label}\t{t}" for label, texts in TEXTS.items() for t in texts]
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    (root / "p.yaml").write_text(PIPELINE)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [sys.executable, "-c", DRIVER, json.dumps(COMMANDS), str(root / "results.json")]
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    outs = {}
    for r in json.loads((root / "results.json").read_text()):
        assert r["code"] == 0, f"{' '.join(r['argv'])} failed:\n{r['out']}\n{r['err']}"
        outs[" ".join(r["argv"][:2])] = r["out"]
    return root, outs


def test_plugin_kinds_are_listed_and_used_through_the_cli(plugin_cli) -> None:
    root, outs = plugin_cli
    assert "charstats" in outs["backbones"]
    assert "centroid_toy" in outs["heads"]
    from embedpipe.store import FeatureStore

    with FeatureStore(root / "s.h5") as fs:
        assert len(fs) == 8 and fs.dim == 41
        assert sorted(fs.classes) == ["calm", "loud"]
        feats, labels = fs.features, fs.labels
    # The plugin's encoder really ran: loud texts are dominated by '!', calm ones by spaces.
    bang = 37
    loud = fs.classes.index("loud")
    assert feats[labels == loud, bang].min() > feats[labels != loud, bang].max()

    meta = json.loads((root / "idx" / "meta.json").read_text())
    assert meta["kind"] == "exact_ip"
    hits = json.loads(outs["search idx"])
    # Exact search over the plugin's features: the two nearest rows are both "loud" texts,
    # and each hit carries its text (the plugin's source gave no reference of its own).
    assert [h["label"] for h in hits] == ["loud", "loud"]
    assert all(h["content"] in TEXTS["loud"] for h in hits)


def test_plugin_kinds_in_a_pipeline_file(plugin_cli) -> None:
    root, outs = plugin_cli
    counts = list((root / "c").rglob("count.json"))
    assert len(counts) == 1 and json.loads(counts[0].read_text()) == {"rows": 8}
    metas = [json.loads(p.read_text()) for p in (root / "c").rglob("meta.json")]
    assert any(m.get("kind") == "exact_ip" for m in metas)
    assert "rows" in outs["dag p.yaml"]
