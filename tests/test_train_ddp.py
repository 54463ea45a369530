"""DDP of ``nvs train`` on CPU (gloo, 2 processes), per-step overhead fixes, throughput smoke test."""

import copy
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from novelviews.config import from_dict
from novelviews.model.configuration import model_config
from novelviews.model.ldm import ViewConditionedLDM
from novelviews.train.callbacks import Exporter
from novelviews.train.data import images_to_float
from novelviews.train.module import LDMModule
from novelviews.train.pairs import PairBatches, PairDataset
from novelviews.train.run import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from test_train import make_pool  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Run by a fresh interpreter: Lightning's "ddp" launcher re-runs this script for rank 1 (as it
# re-runs `nvs train`), so the recording patches below are active in both ranks.
DRIVER = r'''
import json, os, sys
from pathlib import Path
work = Path(sys.argv[1])
from novelviews.config import from_dict
from novelviews.model.ldm import ViewConditionedLDM
from novelviews.train import pairs as D
from novelviews.train.run import TrainConfig, run_train


def rank():
    import torch.distributed as dist
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else -1


get_item, save = D.PairBatches.__getitem__, ViewConditionedLDM.save_pretrained


def recording_get_item(self, index):
    out = get_item(self, index)
    with open(work / f"batches_{rank()}.txt", "a") as f:
        f.write(f"{index} {out['target'].shape[0]} {out['target'].dtype}\n")
    return out


def recording_save(self, *a, **k):
    with open(work / f"exports_{rank()}.txt", "a") as f:
        f.write("export\n")
    return save(self, *a, **k)


D.PairBatches.__getitem__, ViewConditionedLDM.save_pretrained = recording_get_item, recording_save
if __name__ == "__main__":
    cfg = from_dict(TrainConfig, {
        "arch": "tiny", "batch_size": 2, "num_workers": 0, "val_every": 100, "ckpt_every": 100, "val_batch": 2,
        "val_steps": 2, "log_every": 1, "max_steps": 3, "accelerator": "cpu", "devices": "2", "strategy": "ddp",
        "data": [{"path": str(work / "pool.pt")}]})
    info = run_train(cfg, work / "run", overwrite=True, progress=False)
    (work / f"info_{os.environ.get('LOCAL_RANK', '0')}.json").write_text(json.dumps(info))
'''


def _can_run_gloo() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_gloo_available() and sys.platform != "win32"


@pytest.mark.skipif(not _can_run_gloo(), reason="torch.distributed with gloo is not available here")
def test_ddp_two_cpu_processes(tmp_path):
    make_pool(scenes=2, views=4).save(tmp_path / "pool.pt")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "stale.txt").write_text("a previous run")  # --overwrite: only rank 0 may clear it
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    try:
        proc = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True, text=True,
                              timeout=170)
    except subprocess.TimeoutExpired:
        pytest.skip("2-process DDP did not finish in time on this machine")
    log = proc.stdout[-3000:] + proc.stderr[-3000:]
    if proc.returncode != 0 and any(s in log for s in ("Address already in use", "Connection refused", "gloo")):
        pytest.skip(f"this platform cannot start a 2-process gloo group:\n{log}")
    assert proc.returncode == 0, log
    assert "MEMBER: 2/2" in log  # really two processes
    info0 = json.loads((tmp_path / "info_0.json").read_text())
    info1 = json.loads((tmp_path / "info_1.json").read_text())
    assert info0["steps"] == 3 and info1["steps"] == 3
    assert info0["world_size"] == 2  # samples/s counts the effective batch of both ranks
    assert "metrics" in info0 and "metrics" not in info1  # summary by rank 0 only
    # the model is exported once, by rank 0
    assert (tmp_path / "exports_0.txt").read_text().count("export") == 1
    assert not (tmp_path / "exports_1.txt").exists()
    assert (tmp_path / "run" / "model" / "novelviews.json").exists()
    assert not (tmp_path / "run" / "stale.txt").exists()  # rank 0's --overwrite cleared it ...
    assert (tmp_path / "run" / "config.yaml").exists()  # ... and rank 1 did not clear rank 0's files
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 3

    def batches(rank):
        rows = [line.split() for line in (tmp_path / f"batches_{rank}.txt").read_text().splitlines()]
        assert all(int(n) == 2 and dtype == "torch.uint8" for _, n, dtype in rows)  # per-rank batch = batch_size
        return [int(i) for i, _, _ in rows]

    b0, b1 = batches(0), batches(1)
    assert len(b0) == len(b1) == 3  # one batch per rank per step: effective batch = 2 ranks x 2
    assert not set(b0) & set(b1)  # the ranks trained on different batches ...
    assert sorted(b0 + b1) == list(range(6))  # ... and no batch was used twice in the run
    metrics = (tmp_path / "run" / "logs" / "metrics.csv").read_text()
    assert "train/loss" in metrics


def test_exporter_callback_pickles_for_ddp_spawn(tmp_path):
    cb = pickle.loads(pickle.dumps(Exporter(tmp_path)))
    assert isinstance(cb, Exporter) and cb.out == tmp_path


def _tiny_module(ema_decay=0.9):
    torch.manual_seed(0)
    model = ViewConditionedLDM(model_config("tiny"))
    cfg = from_dict(TrainConfig, {"arch": "tiny", "synth": {"scenes": 1}, "ema_decay": ema_decay})
    return LDMModule(model, cfg)


def test_foreach_ema_equals_loop_ema():
    module = _tiny_module()
    fast, ref = module.ema, copy.deepcopy(module.ema)
    g = torch.Generator().manual_seed(0)
    for step in range(5):
        with torch.no_grad():
            for p in module.model.parameters():
                if p.requires_grad:
                    p.add_(torch.randn(p.shape, generator=g) * 0.1)
        fast.update(module.model)
        ref.update_reference(module.model)
    assert int(fast.num_updates) == int(ref.num_updates) == 5
    for (name, a), (_, b) in zip(fast.shadow.state_dict().items(), ref.shadow.state_dict().items()):
        assert torch.allclose(a, b, rtol=0, atol=1e-7), name
    # the EMA moved: trainable params differ from the model, frozen ones (VAE) equal it
    w, e = module.model.cc_projection.weight, fast.shadow.cc_projection.weight
    assert not torch.allclose(w, e)
    vae_m, vae_e = next(module.model.vae.parameters()), next(fast.shadow.vae.parameters())
    assert torch.equal(vae_m, vae_e)
    # decay warm-up as ldm's LitEma: min(decay, (1 + n) / (10 + n)) with n = update number
    assert fast.current_decay() == pytest.approx(min(0.9, 7 / 16))


def test_ema_count_survives_state_dict_round_trip():
    module = _tiny_module()
    for _ in range(3):
        module.ema.update(module.model)
    other = _tiny_module()
    other.ema.update(other.model)  # its Python mirror now says 1
    other.ema.load_state_dict(module.ema.state_dict())
    assert other.ema.current_decay() == module.ema.current_decay() == pytest.approx(min(0.9, 5 / 14))
    other.ema.update(other.model)
    assert int(other.ema.num_updates) == 4


def test_uint8_batches_equal_float_batches():
    pool = make_pool(scenes=3, views=4)
    ds = PairDataset(pool, "6dof+1")
    ref = PairBatches([ds], [1.0], batch_size=6, num_batches=3, seed=5)
    fast = PairBatches([ds], [1.0], batch_size=6, num_batches=3, seed=5, uint8=True)
    for i in range(3):
        r, f = ref[i], fast[i]
        assert f["cond"].dtype == torch.uint8 and r["cond"].dtype == torch.float32
        conv = images_to_float(f)
        for key in r:
            assert torch.equal(conv[key], r[key]), key
    # the module hook makes the same conversion after the transfer to the device
    module = _tiny_module()
    out = module.on_after_batch_transfer(fast[0], 0)
    assert torch.equal(out["target"], ref[0]["target"]) and out["target"].min() >= -1 and out["target"].max() <= 1
    assert images_to_float(ref[0])["cond"] is ref[0]["cond"] or torch.equal(images_to_float(ref[0])["cond"], ref[0]["cond"])


def test_train_throughput_benchmark_smoke(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import train_throughput

    out = tmp_path / "tp.json"
    res = train_throughput.main(["--preset", "tiny", "--batch", "2", "--device", "cpu", "--precision", "fp32",
                                 "--iters", "1", "--warmup", "0", "--lightning-steps", "2", "--workers", "0",
                                 "--scenes", "2", "--views", "3", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["rows"].keys() == res["rows"].keys()
    for name in ("data_float", "data_uint8", "vae_encode", "unet_fwd_bwd", "optimizer", "ema_foreach", "manual_step"):
        assert saved["rows"][name]["ms"] > 0, name
    assert saved["rows"]["lightning"]["steps"] == 2 and saved["batch"] == 2 and saved["image_size"] == 32
