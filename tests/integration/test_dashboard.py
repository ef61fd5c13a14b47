"""The dashboard of `laserd serve --http-listen` (docs/dashboard.md): the JSON API against
the gRPC API's answers (messages and errors), bearer tokens on HTTP, the compiled-in
static files, and the live page in real headless Chromium while a sweep runs.

The server runs the tiny Llama fixture (conftest.tiny_model) with a read and a write
token. The browser test skips when Debian's chromium, chromium-driver or PyPI selenium is
missing (scripts/setup.sh installs them)."""
import json
import os
import pathlib
import re
import shutil
import time
import urllib.error
import urllib.request

import pytest
from conftest import REPO, build_dir, free_port, require_subcommands, started, wait_ready

from google.protobuf import json_format

WRITE = "dash-write-token-1"
READ = "dash-read-token-2"


def _dataset(n):
    cities = [("France", "Paris"), ("Peru", "Lima"), ("Italy", "Rome"), ("Norway", "Oslo"),
              ("Latvia", "Riga"), ("Japan", "Tokyo"), ("Chile", "Santiago"), ("Cuba", "Havana")]
    rows = []
    for i in range(n):
        if i % 5 == 3:
            rows.append({"prompt": f"Item {i} is", "choices": [" wet", " dry", " hot"],
                         "label": i % 3})
        else:
            c, a = cities[i % len(cities)]
            rows.append({"prompt": f"The capital of {c} ({i}) is", "answer": f" {a}"})
    return "".join(json.dumps(r) + "\n" for r in rows)


class Dash:
    """A running `laserd serve` with HTTP, tokens and a data directory."""

    def __init__(self, grpc_target, http_base, data_dir, log):
        self.grpc_target, self.http, self.data_dir, self.log = grpc_target, http_base, data_dir, log

    def get(self, path, token=READ, headers=None):
        """(status, headers, body bytes) of GET path."""
        req = urllib.request.Request(self.http + path)
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def json(self, path, token=READ):
        status, _, body = self.get(path, token)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def client(self, token=WRITE):
        from laserd_client import Client
        return Client(self.grpc_target, token=token)

    def spec(self, data, rhos, **extra):
        s = {"dataset": {"path": str(self.data_dir / data)}, "rho": {"values": rhos},
             "svd": {"method": "SVD_METHOD_EXACT"}, "split": {"validation_fraction": 0.3},
             "batch": {"max_batch_tokens": 256}}
        s.update(extra)
        return s


@pytest.fixture(scope="module")
def dash(laserd_bin, tiny_model, tmp_path_factory):
    require_subcommands(laserd_bin, "serve")
    root = tmp_path_factory.mktemp("dashboard")
    data = root / "data"
    data.mkdir()
    (data / "small.jsonl").write_text(_dataset(20))
    (data / "big.jsonl").write_text(_dataset(600))
    (root / "tokens").write_text(f"{WRITE} write alice\n{READ} read dashboard\n")
    port, http_port = free_port(), free_port()
    log_path = root / "server.log"
    d = Dash(f"127.0.0.1:{port}", f"http://127.0.0.1:{http_port}", data, log_path)

    def serving():
        try:
            return json.loads(d.get("/api/status", token=None)[2]).get("serving")
        except (OSError, ValueError):
            return False

    with started([laserd_bin, "serve", "--model", tiny_model, "--device", "cpu",
                  "--listen", f"127.0.0.1:{port}", "--http-listen", f"127.0.0.1:{http_port}",
                  "--state-dir", root / "state", "--data-dir", data,
                  "--tokens", root / "tokens"], log_path) as proc:
        wait_ready(proc, log_path, serving, interval=0.1)
        yield d


@pytest.fixture(scope="module")
def finished_job(dash):
    """A small finished sweep: (job id, final Job)."""
    with dash.client() as c:
        job_id = c.submit(dash.spec("small.jsonl", [0.05, 0.5, 1.0],
                                    matrix_types=["mlp.in", "attn.q"]))
        job = c.wait(job_id)
    from laserd_client.v1 import sweep_pb2
    assert job.state == sweep_pb2.JOB_STATE_SUCCEEDED
    assert job.result_count == 2 * 2 * 3
    return job_id, job


def parse(obj, message):
    return json_format.Parse(json.dumps(obj), message)


def error_of(dash, path, token=READ):
    status, headers, body = dash.get(path, token)
    assert headers.get_content_type() == "application/json", (path, body)
    return status, json.loads(body)


def grpc_error(fn):
    import grpc
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code().name, e.value.details()


# ---------------------------------------------------------------- static files

WEB = REPO / "web"


def test_static_files_are_compiled_in_and_load_nothing_from_the_network(dash):
    files = sorted(p for p in WEB.iterdir() if p.suffix in (".html", ".js", ".css", ".svg"))
    assert {p.name for p in files} >= {"index.html", "dashboard.js", "charts.js", "style.css"}
    for p in files:
        status, headers, body = dash.get("/" + p.name, token=None)
        assert status == 200, p
        assert body == p.read_bytes(), p  # byte for byte what web/ holds
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
    status, headers, body = dash.get("/", token=None)
    assert status == 200 and body == (WEB / "index.html").read_bytes()
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert dash.get("/dashboard.js", token=None)[1]["Content-Type"] == \
        "text/javascript; charset=utf-8"
    # No file refers to anything off the server (the SVG namespace is a name, not a load).
    remote = re.compile(r"""(src|href|action)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?(https?:)?//|"""
                        r"""@import|fetch\(\s*["'`]https?:|\bimport\s*\(""")
    for p in files:
        text = p.read_text()
        assert not remote.search(text), (p, remote.search(text))
        assert not [u for u in re.findall(r"https?://[^\s\"'`)]+", text)
                    if u != "http://www.w3.org/2000/svg"], p


# --------------------------------------------------------------------- tokens

def test_api_needs_a_read_token_like_grpc(dash):
    # Without a token, with a malformed or unknown one: 401 and the same message as gRPC.
    status, body = error_of(dash, "/api/jobs", token=None)
    assert status == 401
    assert body == {"error": {"code": 401, "status": "UNAUTHENTICATED",
                              "message": "missing 'authorization: Bearer <token>' header"}}
    assert dash.get("/api/jobs", token=None)[1]["WWW-Authenticate"] == 'Bearer realm="laserd"'
    status, _, body = dash.get("/api/jobs", token=None, headers={"Authorization": "Token x"})
    assert status == 401 and json.loads(body)["error"]["message"] == \
        "authorization header is not 'Bearer <token>'"
    with dash.client(token="nope") as c:
        code, msg = grpc_error(lambda: c.list_jobs())
    for path in ("/api/jobs", "/api/jobs/x", "/api/jobs/x/results", "/api/model",
                 "/api/spectrum?matrix_type=mlp.in&layer=0"):
        status, body = error_of(dash, path, token="nope")
        assert (status, body["error"]["status"], body["error"]["message"]) == \
            (401, code, msg) == (401, "UNAUTHENTICATED", "unknown bearer token"), path
    # A read token (and a write token, which includes read) is enough.
    assert dash.get("/api/jobs", token=READ)[0] == 200
    assert dash.get("/api/jobs", token=WRITE)[0] == 200
    # Open like grpc.health.v1: status, metrics and the page.
    for path in ("/api/status", "/metrics", "/", "/dashboard.js"):
        assert dash.get(path, token=None)[0] == 200, path
    # No token is ever logged.
    log = dash.log.read_text()
    assert READ not in log and WRITE not in log


# ------------------------------------------------- JSON against gRPC answers

def test_job_and_results_equal_the_grpc_answers(dash, finished_job):
    from laserd_client.v1 import model_pb2, sweep_pb2

    job_id, job = finished_job
    with dash.client(READ) as c:
        assert parse(dash.json(f"/api/jobs/{job_id}"), sweep_pb2.Job()) == c.get(job_id)
        listed = {j.id: j for j in c.list_jobs()}
        got = dash.json("/api/jobs")["jobs"]
        assert [j["id"] for j in got] == list(listed)  # newest first, like ListJobs
        assert [parse(j, sweep_pb2.Job()) for j in got] == list(listed.values())

        res = dash.json(f"/api/jobs/{job_id}/results")
        want = c.list_results(job_id)
        assert [parse(r, sweep_pb2.Result()) for r in res["results"]] == want
        assert [r["index"] if "index" in r else "0" for r in res["results"]] == \
            [str(i) for i in range(12)]
        assert res["total_size"] == "12" and res["result_count"] == "12"
        assert "next_page_token" not in res
        assert res["job_id"] == job_id and res["state"] == "JOB_STATE_SUCCEEDED"
        assert parse(res["baseline"], sweep_pb2.Evaluation()) == job.baseline
        assert parse(res["progress"], sweep_pb2.Progress()) == job.progress
        # The best: highest validation accuracy, ties by lower validation log-loss, with its
        # test metrics; equal to the job's best and to a choice made here from the list.
        best = parse(res["best"], sweep_pb2.Result())
        assert best == job.progress.best
        singles = [r for r in want if r.kind == sweep_pb2.RESULT_KIND_SINGLE]
        mine = min(singles, key=lambda r: (-r.metrics.validation.accuracy,
                                           r.metrics.validation.log_loss, r.index))
        assert best == mine
        assert best.metrics.test.examples == job.test_examples == 14
        assert best.test_delta.accuracy == pytest.approx(
            best.metrics.test.accuracy - job.baseline.test.accuracy, abs=1e-9)
        assert "best_composition" not in res

        # Filters, order and paging pass through to ListResults unchanged.
        q = ("order_by=validation.accuracy%20desc,%20rho&matrix_type=fc_in&layer=1,0"
             "&kind=single&page_size=4&page_token=1")
        page = dash.json(f"/api/jobs/{job_id}/results?{q}")
        grpc_page = c._call(c.sweeps.ListResults, sweep_pb2.ListResultsRequest(
            job_id=job_id, order_by="validation.accuracy desc, rho", matrix_types=["fc_in"],
            layers=[1, 0], kind=sweep_pb2.RESULT_KIND_SINGLE, page_size=4, page_token="1"))
        for k in ("job_id", "state", "result_count", "progress", "best"):
            page.pop(k)
        assert parse(page, sweep_pb2.ListResultsResponse()) == grpc_page
        assert grpc_page.total_size == 6 and grpc_page.next_page_token == "5"
        assert len(grpc_page.results) == 4

        # The model and spectra (aliases too), as ModelService answers them.
        info = parse(dash.json("/api/model"), model_pb2.ModelInfo())
        ref = c.model()
        info.ClearField("memory")
        ref.ClearField("memory")  # RSS and free memory move between two calls
        assert info == ref and info.num_layers == 2
        for t, layer in (("mlp.in", 1), ("fc_in", 0), ("attn.q", 1), ("mlp.out", 0)):
            sp = parse(dash.json(f"/api/spectrum?matrix_type={t}&layer={layer}"),
                       model_pb2.Spectrum())
            assert sp == c.spectrum(t, layer)
            assert len(sp.singular_values) == sp.max_rank > 0
            assert 1 <= sp.marchenko_pastur.suggested_rank <= sp.max_rank


def test_bad_ids_and_parameters_get_precise_errors(dash, finished_job):
    from laserd_client.v1 import sweep_pb2

    job_id, _ = finished_job

    def same_as_grpc(path, http_status, grpc_call):
        code, msg = grpc_error(grpc_call)
        status, body = error_of(dash, path)
        assert body == {"error": {"code": http_status, "status": code, "message": msg}}, path
        assert status == http_status, path
        return msg

    with dash.client(READ) as c:
        lr = lambda **kw: c._call(c.sweeps.ListResults,  # noqa: E731
                                  sweep_pb2.ListResultsRequest(job_id=job_id, **kw))
        assert same_as_grpc("/api/jobs/job-0000", 404, lambda: c.get("job-0000")) == \
            "job_id: no job 'job-0000'"
        same_as_grpc("/api/jobs/job-0000/results", 404, lambda: c.list_results("job-0000"))
        assert same_as_grpc(f"/api/jobs/{job_id}/results?order_by=speed", 400,
                            lambda: lr(order_by="speed")).startswith("order_by: ")
        assert same_as_grpc(f"/api/jobs/{job_id}/results?matrix_type=mlp.bogus", 400,
                            lambda: lr(matrix_types=["mlp.bogus"])).startswith("matrix_types[0]: ")
        same_as_grpc(f"/api/jobs/{job_id}/results?page_token=-3", 400,
                     lambda: lr(page_token="-3"))
        same_as_grpc(f"/api/jobs/{job_id}/results?page_size=-1", 400, lambda: lr(page_size=-1))
        assert same_as_grpc("/api/spectrum?matrix_type=mlp&layer=0", 400,
                            lambda: c.spectrum("mlp", 0)) == \
            "matrix_type: 'mlp' is a group; name one matrix type"
        assert same_as_grpc("/api/spectrum?matrix_type=mlp.in&layer=2", 400,
                            lambda: c.spectrum("mlp.in", 2)) == "layer: 2 is not in [0, 2)"
        same_as_grpc("/api/spectrum?matrix_type=mlp.bogus&layer=0", 400,
                     lambda: c.spectrum("mlp.bogus", 0))

    # HTTP-only parameters: precise 400s naming the parameter.
    for path, msg in [
        ("/api/spectrum?layer=0", "matrix_type: required"),
        ("/api/spectrum?matrix_type=mlp.in", "layer: required"),
        ("/api/spectrum?matrix_type=mlp.in&layer=abc", "layer: 'abc' is not an integer"),
        ("/api/spectrum?matrix_type=mlp.in&layer=0&layer=1", "layer: given more than once"),
        ("/api/spectrum?matrix_type=mlp.in&layer=0&rank=3",
         "unknown query parameter 'rank' (this path takes layer, matrix_type)"),
        (f"/api/jobs/{job_id}?verbose=1", "unknown query parameter 'verbose' (this path takes none)"),
        (f"/api/jobs/{job_id}/results?kind=pair", "kind: 'pair' is not 'single' or 'composition'"),
        (f"/api/jobs/{job_id}/results?layer=1,x", "layer: 'x' is not an integer"),
        (f"/api/jobs/{job_id}/results?page_size=many", "page_size: 'many' is not an integer"),
    ]:
        status, body = error_of(dash, path)
        assert (status, body) == (400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                                  "message": msg}}), path
    status, body = error_of(dash, "/api/nothing")
    assert (status, body) == (404, {"error": {"code": 404, "status": "NOT_FOUND",
                                              "message": "no route for GET /api/nothing"}})
    # The HTTP API's calls are counted in /metrics like the RPCs.
    metrics = dash.get("/metrics", token=None)[2].decode()
    assert re.search(r'laserd_rpc_requests_total\{method="HTTP job",code="NOT_FOUND"\} [1-9]',
                     metrics), metrics


# ------------------------------------------------------ the page in Chromium

def _browser():
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(scripts/setup.sh installs them)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("PyPI selenium is not installed (scripts/setup.sh installs it)")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let selenium fetch a driver
    opts = Options()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,2000", "--disable-extensions", "--no-first-run"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


def eventually(read, want, timeout=60):
    """Polls read() until it returns want (a polling page is eventually consistent);
    asserts equality with the last value read."""
    deadline = time.monotonic() + timeout
    got = read()
    while got != want and time.monotonic() < deadline:
        time.sleep(0.05)
        got = read()
    assert got == want


def test_live_page_in_headless_chromium(dash, finished_job, capsys):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # A sweep long enough to be watched (seconds): 7 types x 2 layers x 8 ranks on 600
    # examples. Once the page has shown it grow, the test cancels it (on a loaded machine
    # the rest would take a minute); a job that finished first is as good.
    rhos = [0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0]
    with dash.client() as c:
        job_id = c.submit(dash.spec("big.jsonl", rhos))
    total = 7 * 2 * len(rhos)

    def api_count():
        return int(dash.json(f"/api/jobs/{job_id}").get("result_count", "0"))

    t0 = time.monotonic()
    driver = _browser()
    shots = build_dir()
    try:
        deadline = time.monotonic() + 60
        while api_count() < 1:  # the first result is in: the page has something to show
            assert time.monotonic() < deadline, "no result in 60 s"
            time.sleep(0.05)
        driver.get(f"{dash.http}/?poll=250#token={READ}&job={job_id}")
        wait = WebDriverWait(driver, 60, poll_frequency=0.05)
        acc_cells = 'svg.heatmap[data-metric="accuracy"] rect.cell'

        def filled():
            return len(driver.find_elements(By.CSS_SELECTOR, acc_cells + ".filled"))

        wait.until(lambda d: filled() >= 1)
        first = filled()
        first_api = api_count()
        # The whole grid is drawn (empty cells wait for their results), one heatmap pair
        # per matrix type.
        assert len(driver.find_elements(By.CSS_SELECTOR, acc_cells)) == total
        assert len(driver.find_elements(By.CSS_SELECTOR, "svg.heatmap")) == 2 * 7
        assert first < total and first_api < total, \
            f"the sweep ended before the page was read ({first} cells, {first_api} results)"
        driver.save_screenshot(str(shots / "dashboard_running.png"))
        # The token came from the fragment and left the address bar.
        assert READ not in driver.current_url
        assert driver.find_element(By.ID, "job-id").text == job_id
        # The task and the rule that decides correctness (the default ones here).
        assert "task per record · match greedy" in driver.find_element(By.ID, "job-spec").text

        wait.until(lambda d: filled() > first)
        second = filled()
        assert second > first  # the heatmap gains cells as results arrive

        # The end: a cell per result, the final state, the panels show the API's values.
        import grpc
        from laserd_client.v1 import sweep_pb2
        with dash.client() as c:
            try:
                c.cancel(job_id)
            except grpc.RpcError as e:  # it succeeded already
                assert e.code() == grpc.StatusCode.FAILED_PRECONDITION, e
            final = c.wait(job_id)
        assert final.state in (sweep_pb2.JOB_STATE_CANCELLED, sweep_pb2.JOB_STATE_SUCCEEDED)
        state = "cancelled" if final.state == sweep_pb2.JOB_STATE_CANCELLED else "succeeded"
        done = final.result_count
        assert second <= done <= total
        eventually(lambda: (filled(), driver.execute_script(
            "return document.getElementById('job-state').textContent")), (done, state))
        assert len(driver.find_elements(
            By.CSS_SELECTOR, 'svg.heatmap[data-metric="delta_log_loss"] rect.cell.filled')) == done
        assert len(driver.find_elements(By.CSS_SELECTOR, acc_cells)) == total
        res = dash.json(f"/api/jobs/{job_id}/results?page_size=10000")
        assert len(res["results"]) == done

        def shown(id_):
            """(text, data-value) of an element, read in one script (no stale element)."""
            text, value = driver.execute_script(
                "const e = document.getElementById(arguments[0]);"
                "return [e.textContent, e.dataset.value];", id_)
            return text, float(value)

        base = res["baseline"]
        for split in ("validation", "test"):
            m = base[split]
            assert shown(f"baseline-{split}-accuracy") == (f"{m.get('accuracy', 0):.2f}",
                                                           m.get("accuracy", 0))
            assert shown(f"baseline-{split}-log-loss") == (f"{m['log_loss']:.4f}", m["log_loss"])
        best = res["best"]
        for split in ("validation", "test"):
            m = best["metrics"][split]
            assert shown(f"best-{split}-accuracy") == (f"{m.get('accuracy', 0):.2f}",
                                                       m.get("accuracy", 0))
            assert shown(f"best-{split}-log-loss") == (f"{m['log_loss']:.4f}", m["log_loss"])
            assert shown(f"best-{split}-delta-accuracy")[1] == \
                best[f"{split}_delta"].get("accuracy", 0)
            # The best single carries its significance (docs/metrics.md).
            head = driver.execute_script(
                "return document.querySelector('#best tr').textContent")
            assert "p (McNemar)" in head and "95% CI Δ acc." in head and "α 0.05" in head
            sig = best["significance"][split]
            p = sig.get("p_value", 0)
            text, value = shown(f"best-{split}-p-value")
            assert value == p and float(text) == pytest.approx(p, rel=5e-3)  # 3 digits
            assert shown(f"best-{split}-significant") == (
                "significant" if sig.get("significant") else "n.s.",
                1 if sig.get("significant") else 0)
        iv = best["intervention"]
        what = driver.execute_script("return {...document.getElementById('best-what').dataset}")
        assert what == {"type": iv["matrix_type"], "layer": str(iv.get("layer", 0)),
                        "rho": str(iv["rho"]), "rank": iv["rank"]}
        # The best cell is outlined in its type's heatmaps.
        assert len(driver.find_elements(
            By.CSS_SELECTOR, f'svg.heatmap[data-type="{iv["matrix_type"]}"] rect.best-outline')) == 2
        # The job list row agrees with the panel.
        eventually(lambda: driver.execute_script(
            "const r = document.querySelector(`#jobs tr[data-job-id='${arguments[0]}']`);"
            "return [r.querySelector('.state').textContent,"
            "        r.querySelector('.job-progress').textContent];", job_id),
            [state, f"{done}/{total}"])

        # The spectrum of the best matrix with its suggested rank marked.
        spectrum_shown = (
            "const p = document.getElementById('spectrum-plot');"
            "const m = document.getElementById('suggested-rank-marker');"
            "const k = document.getElementById('spectrum-suggested-rank');"
            "return p && m && k ? [document.getElementById('spectrum-type').value,"
            "  document.getElementById('spectrum-layer').value, p.dataset.suggestedRank,"
            "  p.dataset.count, m.dataset.rank, k.textContent] : null;")

        def expect_spectrum(matrix_type, layer):
            sp = dash.json(f"/api/spectrum?matrix_type={matrix_type}&layer={layer}")
            k = sp["marchenko_pastur"]["suggested_rank"]
            want = [matrix_type, str(layer), k, str(len(sp["singular_values"])), k, k]
            eventually(lambda: driver.execute_script(spectrum_shown), want)

        expect_spectrum(iv["matrix_type"], iv.get("layer", 0))
        # Clicking a heatmap cell shows that matrix's spectrum (another matrix's, if any).
        matrices = [(r["intervention"]["matrix_type"], r["intervention"].get("layer", 0))
                    for r in res["results"]]
        other = next((m for m in matrices if m != (iv["matrix_type"], iv.get("layer", 0))),
                     matrices[0])
        cell = (f'svg.heatmap[data-type="{other[0]}"][data-metric="accuracy"]'
                f' rect.cell.filled[data-layer="{other[1]}"]')

        def click(d):
            try:
                d.find_element(By.CSS_SELECTOR, cell).click()
                return True
            except (StaleElementReferenceException, NoSuchElementException):
                return False  # redrawn between finding and clicking: again
        wait.until(click)
        expect_spectrum(*other)

        path = shots / "dashboard.png"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, min(height + 160, 6000))  # the whole page
        time.sleep(0.3)
        driver.save_screenshot(str(path))
        assert path.stat().st_size > 10000
        with capsys.disabled():  # shown in scripts/test.sh's output too
            print(f"\ndashboard: {first} heatmap cells, then {second}, then {done} of {total} "
                  f"({state}); "
                  f"screenshot: {path} (and {shots / 'dashboard_running.png'}); "
                  f"sweep and page done in {time.monotonic() - t0:.1f} s")
        # No script error and nothing refused by the Content-Security-Policy.
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert severe == []
    finally:
        driver.quit()


def test_generation_job_shows_its_task_rule_and_f1(dash):
    """A generation sweep: the page names the task, the match rule and the generation
    settings where it shows the spec, and its baseline table has an F1 column."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # Completion records only (a choice record is refused for a generation task).
    lines = [ln for ln in _dataset(20).splitlines() if '"answer"' in ln]
    (dash.data_dir / "completion.jsonl").write_text("\n".join(lines) + "\n")
    with dash.client() as c:
        job_id = c.submit(dash.spec("completion.jsonl", [0.5], matrix_types=["mlp.in"],
                                    task="TASK_KIND_GENERATION", match="MATCH_RULE_PREFIX",
                                    generation={"max_new_tokens": 2, "stop_strings": ["."]}))
        job = c.wait(job_id)
    from laserd_client.v1 import sweep_pb2
    assert job.state == sweep_pb2.JOB_STATE_SUCCEEDED, job.error.message
    assert job.baseline.validation.HasField("f1")
    driver = _browser()
    try:
        driver.get(f"{dash.http}/?poll=250#token={READ}&job={job_id}")
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: d.find_element(By.ID, "job-id").text == job_id)
        spec = lambda d: d.find_element(By.ID, "job-spec").text  # noqa: E731
        wait.until(lambda d: "task generation" in spec(d))
        assert 'task generation · match prefix (≤ 2 new tokens, stop ".")' in spec(driver)
        wait.until(lambda d: d.find_elements(By.ID, "baseline-validation-f1"))
        f1 = driver.find_element(By.ID, "baseline-validation-f1")
        assert float(f1.get_attribute("data-value")) == pytest.approx(
            job.baseline.validation.f1)
    finally:
        driver.quit()
