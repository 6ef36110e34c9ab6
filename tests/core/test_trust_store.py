"""The store never vouches for what it cannot show.

A cache hit is earned (every object present as recorded), manifests name only objects of their
own store, external-data names cannot climb out of their folder, S3 failures leave no manifest,
and two processes racing a stage both end with manifests that verify.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest
import yaml

from trt_ops.cli import main
from trt_ops.errors import OnnxModelError, StoreError
from trt_ops.store import FileStore, S3Store, open_store
from trt_ops.store import cache as store_cache
from trt_ops.store.cache import manifest_key, run_cached
from trt_ops.store.manifest import Artifact, Manifest


def local(uri: str) -> Path:
    return Path(urlparse(uri).path)


def one_precision(folder: Path) -> str:
    """The example spec cut to fp16, no registry: the shortest run that builds an engine."""
    spec = folder / "pipeline.yaml"
    data = yaml.safe_load(spec.read_text())
    data["precisions"] = ["fp16"]
    data.pop("registry", None)
    spec.write_text(yaml.safe_dump(data))
    return str(spec)


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out + out.err


def engine_of(store_dir: Path) -> Path:
    return next(store_dir.glob("build/*/*/engine.onnx"))


def test_damaged_objects_are_recomputed_never_vouched_for(digits_copy, capsys, monkeypatch):
    """Deleted engine, one flipped byte, a truncated report: each named, each recomputed."""
    monkeypatch.setenv(store_cache.VERIFY_ENV, "")  # `run --verify` sets it; restored after
    spec = one_precision(digits_copy)
    store_dir = digits_copy / "store"
    code, _ = run_cli(capsys, "run", spec)
    assert code == 0

    engine = engine_of(store_dir)
    engine.unlink()
    code, out = run_cli(capsys, "run", spec)
    assert code == 0
    assert "all steps were cache hits" not in out
    assert "computed: build" in out
    assert "build: the stored output" in out and "engine" in out and "missing" in out
    assert engine.is_file()  # the PASSED table links to a file that is there

    # one flipped byte, same size: found by `verify`, and by `run --verify`
    data = bytearray(engine.read_bytes())
    data[len(data) // 2] ^= 0xFF
    engine.write_bytes(bytes(data))
    code, out = run_cli(capsys, "verify", str(store_dir))
    assert code == 1
    assert "FAILED" in out and "sha256" in out and engine.name in out
    assert "1 of" in out and "fix:" in out
    code, out = run_cli(capsys, "run", "--verify", spec)
    assert code == 0 and "computed: build" in out and "sha256" in out
    assert run_cli(capsys, "verify", str(store_dir))[0] == 0

    # a truncated report: its size gives it away without hashing
    report = next(store_dir.glob("validate/*/*/report.html"))
    report.write_bytes(report.read_bytes()[:100])
    code, out = run_cli(capsys, "verify", "--quick", str(store_dir))
    assert code == 1 and "size 100 bytes" in out
    code, out = run_cli(capsys, "run", spec)
    assert "computed: validate" in out and "report" in out
    code, out = run_cli(capsys, "verify", str(store_dir))
    assert code == 0 and "FAILED" not in out


def _counting(store, name: str, payload: bytes):
    calls = []

    def compute() -> Manifest:
        calls.append(1)
        art = store.put_artifact(f"stage/k/{name}", _tmp_file(payload))
        return Manifest(stage="stage", key="k", artifacts={"out": art})
    return compute, calls


def _tmp_file(payload: bytes) -> Path:
    import tempfile

    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(payload)
    return Path(f.name)


def test_large_objects_hashed_on_hits_only_when_asked(tmp_path, monkeypatch, caplog):
    """Objects over the hashing limit are checked by size on a hit; TRT_OPS_VERIFY=full
    (what `trt-ops run --verify` sets) hashes them too."""
    store = FileStore(tmp_path)
    compute, calls = _counting(store, "big.bin", b"x" * 4096)
    first = run_cached(store, "stage", "k", compute)
    monkeypatch.setattr(store_cache, "HASH_LIMIT", 1024)
    path = local(first.artifact("out").uri)
    path.write_bytes(b"y" * 4096)  # same size, other bytes
    assert run_cached(store, "stage", "k", compute).cache_hit  # size only: not seen
    monkeypatch.setenv(store_cache.VERIFY_ENV, "full")
    with caplog.at_level(logging.WARNING, logger="trt_ops"):
        again = run_cached(store, "stage", "k", compute)
    assert not again.cache_hit and len(calls) == 2
    assert "out" in caplog.text and "sha256" in caplog.text and "big.bin" in caplog.text
    assert path.read_bytes() == b"x" * 4096


def test_manifest_written_only_when_its_objects_are_stored(tmp_path):
    store = FileStore(tmp_path)

    def compute() -> Manifest:
        art = store.put_artifact("stage/k/out.bin", _tmp_file(b"abc"))
        local(art.uri).unlink()  # lost between write and commit (a lifecycle rule, a full disk)
        return Manifest(stage="stage", key="k", artifacts={"out": art})

    with pytest.raises(StoreError) as exc:
        run_cached(store, "stage", "k", compute)
    assert "out" in exc.value.problem and "missing" in exc.value.problem
    assert "no manifest was written" in exc.value.fix
    assert not store.exists(manifest_key("stage", "k"))


@pytest.mark.parametrize("uri", [
    "file:///etc/passwd",
    "{root}/../outside.bin",
    "s3://other-bucket/model.onnx",
    "https://example.com/model.onnx",
])
def test_file_store_refuses_objects_outside_it(tmp_path, uri):
    store = FileStore(tmp_path / "store")
    (tmp_path / "outside.bin").write_bytes(b"secret")
    art = Artifact(uri=uri.format(root=store.uri), sha256="0" * 64, size=6)
    with pytest.raises(StoreError) as exc:
        store.fetch(art)
    assert "outside the artifact store" in exc.value.problem and store.uri in exc.value.problem
    assert "own store" in exc.value.fix


def test_s3_store_refuses_another_bucket_and_prefix(s3_bucket, s3_endpoint):
    store = open_store(s3_bucket)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="someone-elses")
    client.put_object(Bucket="someone-elses", Key="model.onnx", Body=b"not yours")
    for uri in ("s3://someone-elses/model.onnx", f"s3://{store.bucket}/other-prefix/x",
                f"file://{os.sep}etc/passwd"):
        with pytest.raises(StoreError, match="outside the artifact store"):
            store.fetch(Artifact(uri=uri, sha256="0" * 64, size=9))


def test_cli_manifest_naming_a_foreign_object_is_refused(digits_copy, tmp_path, capsys):
    spec = one_precision(digits_copy)
    assert main(["export", spec, "-o", str(tmp_path / "export.json")]) == 0
    capsys.readouterr()
    export = Manifest.from_dict(yaml.safe_load((tmp_path / "export.json").read_text()))
    (tmp_path / "evil.onnx").write_bytes(b"whatever")
    export.artifacts["onnx"] = Artifact(uri=(tmp_path / "evil.onnx").as_uri(),
                                        sha256=export.artifact("onnx").sha256, size=8)
    (tmp_path / "evil.json").write_text(export.to_json())
    before = sorted(p for p in (digits_copy / "store").rglob("*") if p.is_file())
    code, out = run_cli(capsys, "calibrate", spec, "--export", str(tmp_path / "evil.json"),
                        "--precision", "fp16", "-o", str(tmp_path / "fp16.json"))
    assert code == 2
    assert "outside the artifact store" in out and "evil.onnx" in out and "fix:" in out
    assert "Traceback" not in out
    assert sorted(p for p in (digits_copy / "store").rglob("*") if p.is_file()) == before
    # and `verify` says the same of that manifest
    code, out = run_cli(capsys, "verify", str(tmp_path / "evil.json"), "--store", spec)
    assert code == 1 and "outside the artifact store" in out


@pytest.mark.parametrize("name", ["../../escaped.data", "/tmp/abs.data", "sub/../../x.data",
                                  "..", "a\\..\\b.data"])
def test_external_data_names_cannot_climb_out(tmp_path, monkeypatch, name):
    from trt_ops.models.onnx import local_onnx

    monkeypatch.setenv("TRT_OPS_CACHE_DIR", str(tmp_path / "cache"))
    store = FileStore(tmp_path / "store")
    onnx_art = store.put_artifact("export/k/model.onnx", _tmp_file(b"onnx"))
    data_art = store.put_artifact("export/k/model.onnx.data", _tmp_file(b"data"))
    manifest = Manifest(stage="export", key="k", artifacts={"onnx": onnx_art, "onnx_data": data_art},
                        info={"external_data": name})
    with pytest.raises(OnnxModelError) as exc:
        local_onnx(manifest, store)
    assert repr(name) in exc.value.problem and "plain file name" in exc.value.problem
    assert "no ../" in exc.value.fix
    assert not list(tmp_path.rglob("escaped.data")) and not list(tmp_path.rglob("x.data"))


# --- S3: multipart transfers, and a connection that drops mid-upload ---------------------------

def test_large_objects_go_up_in_parts_and_come_back_verified(s3_bucket, s3_endpoint, tmp_path):
    store = S3Store(s3_bucket, multipart_bytes=5 * 1024**2)
    payload = os.urandom(12 * 1024**2)
    art = store.put_artifact("export/k/model.onnx.data", _tmp_file(payload))
    key = urlparse(art.uri).path.lstrip("/")
    assert art.sha256 in key  # the key names the bytes it holds
    head = boto3.client("s3", endpoint_url=s3_endpoint).head_object(Bucket=store.bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3")  # three parts, committed as one object
    assert head["Metadata"]["sha256"] == art.sha256
    assert store.check(art) is None
    assert store.fetch(art).read_bytes() == payload


class DroppingProxy:
    """Forwards TCP to the S3 server until ``budget`` bytes went up, then drops every
    connection and stops listening: a server that dies in the middle of an upload."""

    def __init__(self, upstream: str, budget: int) -> None:
        parsed = urlparse(upstream)
        self.target = (parsed.hostname, parsed.port)
        self.budget = budget
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.dead = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.dead.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.conns += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, upward: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if upward:
                    self.budget -= len(chunk)
                    if self.budget <= 0:
                        self.kill()
                        return
                dst.sendall(chunk)
        except OSError:
            pass

    def kill(self) -> None:
        self.dead.set()
        self.listener.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


def test_s3_dying_mid_upload_leaves_no_manifest(s3_bucket, s3_endpoint):
    proxy = DroppingProxy(s3_endpoint, budget=7 * 1024**2)
    store = S3Store(s3_bucket, endpoint_url=proxy.url, multipart_bytes=5 * 1024**2)

    def compute() -> Manifest:
        art = store.put_artifact("build/k/engine.onnx", _tmp_file(os.urandom(12 * 1024**2)))
        return Manifest(stage="build", key="k", artifacts={"engine": art})

    try:
        with pytest.raises(StoreError) as exc:
            run_cached(store, "build", "k", compute)
    finally:
        proxy.kill()
    assert "S3" in exc.value.problem and exc.value.fix
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    listed = client.list_objects_v2(Bucket=store.bucket).get("Contents", [])
    committed = [o["Key"] for o in listed if "/.tmp/" not in o["Key"]]
    assert committed == []  # no engine, and above all no manifest claiming one
    # and once the server is back, the same stage completes and verifies
    healthy = S3Store(s3_bucket)
    done = run_cached(healthy, "build", "k", lambda: Manifest(
        stage="build", key="k",
        artifacts={"engine": healthy.put_artifact("build/k/engine.onnx", _tmp_file(b"e" * 10))}))
    assert healthy.check(done.artifact("engine")) is None


# --- two processes racing the same stage on the same store -------------------------------------

def _race(store_uri: str, barrier, results) -> None:
    """One racer: a stage whose output differs every time it is computed (as engine builds
    may), started at the same moment as the other."""
    import time

    store = open_store(store_uri)

    def compute() -> Manifest:
        art = store.put_artifact("build/k/engine.onnx", _tmp_file(os.urandom(256 * 1024)))
        time.sleep(0.5)  # let the other racer overwrite, if the key allowed it
        side = store.put_artifact("build/k/report.json", _tmp_file(os.urandom(1024)))
        return Manifest(stage="build", key="k", artifacts={"engine": art, "report": side})

    barrier.wait(timeout=60)
    results.put(run_cached(store, "build", "k", compute).to_dict())


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_racing_processes_both_end_with_manifests_that_verify(kind, tmp_path, request):
    store_uri = str(tmp_path / "store") if kind == "file" else request.getfixturevalue("s3_bucket")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(store_uri, barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    manifests = [Manifest.from_dict(results.get(timeout=120)) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    store = open_store(store_uri)
    assert [m.cache_hit for m in manifests] == [False, False]  # both really raced
    stored = Manifest.from_dict(store.read_json(manifest_key("build", "k")))
    for m in (*manifests, stored):
        for name, art in m.artifacts.items():
            assert store.check(art) is None, f"{name} of a racer's manifest does not verify"
    assert stored.artifact("engine").sha256 in {m.artifact("engine").sha256 for m in manifests}
