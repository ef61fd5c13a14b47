"""Python client of laserd (the laser.v1 gRPC API), for scripts and notebooks.

    from laserd_client import Client
    c = Client("localhost:50051", token=None)
    job = c.submit({"dataset": {"path": "/data/capitals.jsonl"},
                    "matrix_types": ["mlp.in"], "layers": {"ranges": [{"start": 20}]},
                    "rho": {"values": [0.01, 0.1]}})
    for r in c.results(job):          # as they arrive; reconnects and resumes
        print(r.index, r.intervention.matrix_type, r.metrics.validation.accuracy)
    df = pandas.DataFrame(c.rows(job))

The generated messages and stubs are in laserd_client.v1 (sweep_pb2, model_pb2,
dataset_pb2 and their *_pb2_grpc).
"""

from __future__ import annotations

import random
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

import grpc
from google.protobuf import json_format

from laserd_client.v1 import dataset_pb2, dataset_pb2_grpc, model_pb2, model_pb2_grpc
from laserd_client.v1 import sweep_pb2, sweep_pb2_grpc

__all__ = [
    "Client",
    "JobFailed",
    "build_spec",
    "flatten_result",
    "COLUMNS",
    "ResultCursor",
    "sweep_pb2",
    "model_pb2",
    "dataset_pb2",
]

SpecLike = Union[Mapping[str, Any], sweep_pb2.SweepSpec, str]

# Flat-row columns, the same names as `laserctl results --format csv`. top_k columns
# ("validation.top_k.5", ...) follow for every k present.
COLUMNS = [
    "index", "plan_index", "kind", "matrix_type", "layer", "expert", "rho", "rate", "rank_source",
    "rank", "max_rank", "relative_error", "svd_method", "stacked_on", "kept",
    "validation.examples", "validation.correct", "validation.accuracy", "validation.log_loss",
    "test.examples", "test.correct", "test.accuracy", "test.log_loss",
    "validation_delta.accuracy", "validation_delta.log_loss",
    "test_delta.accuracy", "test_delta.log_loss",
]

_TERMINAL = {sweep_pb2.JOB_STATE_SUCCEEDED, sweep_pb2.JOB_STATE_FAILED,
             sweep_pb2.JOB_STATE_CANCELLED}
_RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
              grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.ABORTED,
              grpc.StatusCode.CANCELLED}


class JobFailed(RuntimeError):
    """wait() on a job that ended FAILED or CANCELLED (raise_on_failure=True)."""

    def __init__(self, job: sweep_pb2.Job):
        state = sweep_pb2.JobState.Name(job.state)
        super().__init__(f"job {job.id} ended {state}: {job.error.message}".rstrip(": "))
        self.job = job


def build_spec(spec: SpecLike) -> sweep_pb2.SweepSpec:
    """A SweepSpec from a dict in protobuf JSON form (proto or JSON field names, enum
    names or numbers), a JSON string, or a SweepSpec (copied). Unknown fields raise
    ValueError naming them."""
    if isinstance(spec, sweep_pb2.SweepSpec):
        out = sweep_pb2.SweepSpec()
        out.CopyFrom(spec)
        return out
    try:
        if isinstance(spec, str):
            return json_format.Parse(spec, sweep_pb2.SweepSpec())
        return json_format.ParseDict(dict(spec), sweep_pb2.SweepSpec())
    except json_format.ParseError as e:
        raise ValueError(f"not a laser.v1.SweepSpec: {e}") from None


def _short(enum_type, value: int, prefix: str) -> str:
    name = enum_type.Name(value)
    return (name[len(prefix):] if name.startswith(prefix) else name).lower()


def flatten_result(r: sweep_pb2.Result) -> Dict[str, Any]:
    """One flat dict of a Result, keyed like COLUMNS (+ top_k columns). Numbers stay
    numbers; `rate` is None unless the rank was given as a rate, `kept` is None for
    single results, `stacked_on` is "type@layer:rho;..." ("" for singles; an expert's
    matrix is "moe.in[3]"), `expert` is None except for an expert's matrix."""
    iv = r.intervention

    def name(s):
        return f"{s.matrix_type}[{s.expert}]" if s.HasField("expert") else s.matrix_type

    row: Dict[str, Any] = {
        "index": r.index,
        "plan_index": r.plan_index,
        "kind": _short(sweep_pb2.ResultKind, r.kind, "RESULT_KIND_"),
        "matrix_type": iv.matrix_type,
        "layer": iv.layer,
        "expert": iv.expert if iv.HasField("expert") else None,
        "rho": iv.rho,
        "rate": iv.rate if iv.HasField("rate") else None,
        "rank_source": _short(sweep_pb2.RankSource, iv.rank_source, "RANK_SOURCE_"),
        "rank": iv.rank,
        "max_rank": iv.max_rank,
        "relative_error": iv.relative_error,
        "svd_method": _short(sweep_pb2.SvdMethod, iv.svd_method, "SVD_METHOD_"),
        "stacked_on": ";".join(f"{name(s)}@{s.layer}:{s.rho!r}" for s in r.stacked_on),
        "kept": r.kept if r.kind == sweep_pb2.RESULT_KIND_COMPOSITION else None,
    }
    for split, m in (("validation", r.metrics.validation), ("test", r.metrics.test)):
        row[f"{split}.examples"] = m.examples
        row[f"{split}.correct"] = m.correct
        row[f"{split}.accuracy"] = m.accuracy
        row[f"{split}.log_loss"] = m.log_loss
        # Generation tasks (TASK_KIND_GENERATION) only: the word-overlap F1 etc.
        for f in ("f1", "precision", "recall", "generated_tokens"):
            if m.HasField(f):
                row[f"{split}.{f}"] = getattr(m, f)
    for split, d in (("validation_delta", r.validation_delta), ("test_delta", r.test_delta)):
        row[f"{split}.accuracy"] = d.accuracy
        row[f"{split}.log_loss"] = d.log_loss
    for split, tk in (("validation", r.metrics.validation.top_k_accuracy),
                      ("test", r.metrics.test.top_k_accuracy),
                      ("validation_delta", r.validation_delta.top_k_accuracy),
                      ("test_delta", r.test_delta.top_k_accuracy)):
        for k in sorted(tk):
            row[f"{split}.top_k.{k}"] = tk[k]
    return row


class ResultCursor:
    """Keeps a resumed watch exact: accepts results only in dense index order.
    offer() returns "accept" (and advances), "duplicate" (already seen; drop) or
    "gap" (results were skipped; reconnect from next_index)."""

    def __init__(self, start: int = 0):
        self.next_index = start

    def offer(self, r: sweep_pb2.Result) -> str:
        if r.index < self.next_index:
            return "duplicate"
        if r.index > self.next_index:
            return "gap"
        self.next_index += 1
        return "accept"


class Client:
    """A connection to laserd. `target` is HOST:PORT; `token` a bearer token (sent
    as `authorization: Bearer ...`); `tls_ca` PEM root certificates (bytes or a path)
    or True for the system roots; `timeout` the deadline of unary calls in seconds."""

    def __init__(self, target: str, token: Optional[str] = None, *,
                 tls_ca: Union[None, bool, bytes, str] = None, timeout: float = 30.0,
                 options: Sequence = ()):
        opts = [("grpc.max_receive_message_length", 64 << 20), *options]
        if tls_ca:
            roots = None
            if isinstance(tls_ca, str):
                with open(tls_ca, "rb") as f:
                    roots = f.read()
            elif isinstance(tls_ca, bytes):
                roots = tls_ca
            self.channel = grpc.secure_channel(
                target, grpc.ssl_channel_credentials(root_certificates=roots), opts)
        else:
            self.channel = grpc.insecure_channel(target, opts)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        self.sweeps = sweep_pb2_grpc.SweepServiceStub(self.channel)
        self.models = model_pb2_grpc.ModelServiceStub(self.channel)
        self.datasets = dataset_pb2_grpc.DatasetServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request):
        return method(request, timeout=self.timeout, metadata=self._metadata)

    # ---- jobs
    def submit(self, spec: SpecLike, request_id: str = "") -> str:
        """Creates a sweep job; returns its id. A retry with the same request_id
        returns the same job."""
        req = sweep_pb2.CreateSweepRequest(spec=build_spec(spec), request_id=request_id)
        return self._call(self.sweeps.CreateSweep, req).id

    def validate(self, spec: SpecLike) -> int:
        """Checks a spec without creating a job; returns the number of interventions."""
        req = sweep_pb2.CreateSweepRequest(spec=build_spec(spec), validate_only=True)
        return self._call(self.sweeps.CreateSweep, req).progress.interventions_total

    def get(self, job_id: str) -> sweep_pb2.Job:
        return self._call(self.sweeps.GetJob, sweep_pb2.GetJobRequest(job_id=job_id))

    def list_jobs(self, states: Sequence[int] = (), labels: Optional[Mapping[str, str]] = None,
                  page_size: int = 0) -> List[sweep_pb2.Job]:
        """Every job matching the filters (all pages), newest first."""
        jobs: List[sweep_pb2.Job] = []
        token = ""
        while True:
            req = sweep_pb2.ListJobsRequest(states=list(states), labels=dict(labels or {}),
                                            page_size=page_size, page_token=token)
            resp = self._call(self.sweeps.ListJobs, req)
            jobs.extend(resp.jobs)
            token = resp.next_page_token
            if not token:
                return jobs

    def cancel(self, job_id: str) -> sweep_pb2.Job:
        return self._call(self.sweeps.CancelJob, sweep_pb2.CancelJobRequest(job_id=job_id))

    def delete(self, job_id: str, force: bool = False) -> None:
        self._call(self.sweeps.DeleteJob, sweep_pb2.DeleteJobRequest(job_id=job_id, force=force))

    # ---- streaming
    def events(self, job_id: str, from_index: int = 0,
               retry_for: float = 300.0) -> Iterator[sweep_pb2.WatchJobEvent]:
        """WatchJob events until the job ends, across reconnects: after a dropped
        stream it reconnects with backoff from the last result index + 1, so every
        result event is yielded exactly once, in index order. Other events (job,
        progress, state changes) may repeat after a reconnect. Gives up (re-raising
        the last error) after `retry_for` seconds without a successful read."""
        cursor = ResultCursor(from_index)
        backoff = 0.25
        last_ok = time.monotonic()
        while True:
            state = sweep_pb2.JOB_STATE_UNSPECIFIED
            stream = self.sweeps.WatchJob(
                sweep_pb2.WatchJobRequest(job_id=job_id, from_result_index=cursor.next_index),
                metadata=self._metadata)
            error: Optional[grpc.RpcError] = None
            gap = False
            try:
                for ev in stream:
                    last_ok = time.monotonic()
                    backoff = 0.25
                    kind = ev.WhichOneof("event")
                    if kind == "job":
                        state = ev.job.state
                    elif kind == "state_change":
                        state = ev.state_change.current
                    elif kind == "result":
                        verdict = cursor.offer(ev.result)
                        if verdict == "duplicate":
                            continue
                        if verdict == "gap":
                            gap = True
                            stream.cancel()
                            break
                    yield ev
            except grpc.RpcError as e:
                if e.code() not in _RETRYABLE:
                    raise
                error = e
            if gap:
                continue
            if error is None and state in _TERMINAL:
                return
            if time.monotonic() - last_ok > retry_for:
                if error is not None:
                    raise error
                raise TimeoutError(f"watch {job_id}: stream keeps ending before the job does")
            time.sleep(backoff * random.uniform(0.5, 1.0))
            backoff = min(backoff * 2, 10.0)

    def results(self, job_id: str, from_index: int = 0,
                retry_for: float = 300.0) -> Iterator[sweep_pb2.Result]:
        """The job's results as they arrive (stored ones first), each exactly once
        and in index order, resuming after dropped connections; ends with the job."""
        for ev in self.events(job_id, from_index, retry_for):
            if ev.WhichOneof("event") == "result":
                yield ev.result

    def wait(self, job_id: str, raise_on_failure: bool = False,
             retry_for: float = 300.0) -> sweep_pb2.Job:
        """Blocks until the job ends; returns the final Job. With raise_on_failure,
        a FAILED or CANCELLED job raises JobFailed."""
        for _ in self.events(job_id, self.get(job_id).result_count, retry_for):
            pass
        job = self.get(job_id)
        if raise_on_failure and job.state != sweep_pb2.JOB_STATE_SUCCEEDED:
            raise JobFailed(job)
        return job

    # ---- stored results
    def list_results(self, job_id: str, order_by: str = "", matrix_types: Sequence[str] = (),
                     layers: Sequence[int] = (), page_size: int = 0) -> List[sweep_pb2.Result]:
        """Every stored result of the job (all pages), in `order_by` order."""
        out: List[sweep_pb2.Result] = []
        token = ""
        while True:
            req = sweep_pb2.ListResultsRequest(job_id=job_id, order_by=order_by,
                                               matrix_types=list(matrix_types),
                                               layers=list(layers), page_size=page_size,
                                               page_token=token)
            resp = self._call(self.sweeps.ListResults, req)
            out.extend(resp.results)
            token = resp.next_page_token
            if not token:
                return out

    def example_outputs(self, job_id: str, result_index: Optional[int] = None,
                        page_size: int = 0) -> Iterator[sweep_pb2.ExampleOutputs]:
        """The job's stored per-example outputs (spec.keep_example_outputs), page by
        page: the baseline's (result_index -1) first, then each result's in index
        order; only `result_index`'s when given (-1: the baseline)."""
        token = ""
        while True:
            req = sweep_pb2.ListExampleOutputsRequest(job_id=job_id, page_size=page_size,
                                                      page_token=token)
            if result_index is not None:
                req.result_index = result_index
            resp = self._call(self.sweeps.ListExampleOutputs, req)
            yield from resp.outputs
            token = resp.next_page_token
            if not token:
                return

    def significance(self, job_id: str,
                     result_index: Optional[int] = None) -> sweep_pb2.Significance:
        """Whether a result's gain over the baseline is significant (McNemar's exact
        test, paired-bootstrap intervals; docs/metrics.md). Default: the best single."""
        req = sweep_pb2.GetSignificanceRequest(job_id=job_id)
        if result_index is not None:
            req.result_index = result_index
        return self._call(self.sweeps.GetSignificance, req)

    def rows(self, job_id: str, order_by: str = "") -> List[Dict[str, Any]]:
        """The stored results as flat dicts (flatten_result), e.g. for
        pandas.DataFrame(client.rows(job_id))."""
        return [flatten_result(r) for r in self.list_results(job_id, order_by)]

    # ---- model and datasets
    def model(self) -> model_pb2.ModelInfo:
        return self._call(self.models.DescribeModel, model_pb2.DescribeModelRequest())

    def spectrum(self, matrix_type: str, layer: int) -> model_pb2.Spectrum:
        req = model_pb2.GetSpectrumRequest(matrix_type=matrix_type, layer=layer)
        return self._call(self.models.GetSpectrum, req)

    def upload_dataset(self, path: str, display_name: str = "",
                       chunk_size: int = 1 << 20) -> dataset_pb2.Dataset:
        """Uploads a JSONL file; returns the stored Dataset (its id is the sha256)."""
        import hashlib
        import os

        with open(path, "rb") as f:
            data = f.read()

        def requests():
            yield dataset_pb2.UploadDatasetRequest(header=dataset_pb2.UploadDatasetHeader(
                display_name=display_name or os.path.basename(path),
                expected_sha256=hashlib.sha256(data).hexdigest()))
            for i in range(0, len(data), chunk_size):
                yield dataset_pb2.UploadDatasetRequest(chunk=data[i:i + chunk_size])

        return self.datasets.UploadDataset(requests(), timeout=self.timeout,
                                           metadata=self._metadata)

    def delete_dataset(self, dataset_id: str) -> None:
        """Deletes an uploaded dataset. FAILED_PRECONDITION (naming the jobs) while a
        queued or running job uses it; NOT_FOUND when there is none."""
        self._call(self.datasets.DeleteDataset,
                   dataset_pb2.DeleteDatasetRequest(dataset_id=dataset_id))

    def list_datasets(self) -> List[dataset_pb2.Dataset]:
        out: List[dataset_pb2.Dataset] = []
        token = ""
        while True:
            resp = self._call(self.datasets.ListDatasets,
                              dataset_pb2.ListDatasetsRequest(page_token=token))
            out.extend(resp.datasets)
            token = resp.next_page_token
            if not token:
                return out
