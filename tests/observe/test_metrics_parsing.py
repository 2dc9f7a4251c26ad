"""Reading in-flight counts from vLLM and llama.cpp ``/metrics`` (pure parsing).

Test design notes:
- The samples in ``samples/`` are written from the engines' documented metric names and shapes:
  vLLM (data-parallel: one label set per engine, counters, several histograms, a config info
  gauge, process and HTTP metrics around the gauges we need) and llama.cpp ``--metrics``
  (unlabelled counters and gauges, a ``nan`` throughput before the first generation). Two
  more follow older releases: ``vllm-v0.txt`` (vLLM 0.6's v0 names: ``gpu_cache_usage_perc``,
  ``num_requests_swapped``, only a ``model_name`` label, sample timestamps as an exporter adds
  them) and ``llamacpp-kv.txt`` (llama-server builds before the unified KV cache, which still
  export ``kv_cache_usage_ratio`` and ``kv_cache_tokens``; current builds do not).
- in-flight = running + waiting, summed over label sets; a reading needs *both* gauges: an
  unknown count is reported as None, never as a smaller number or as zero.
- The KV-cache gauge is optional: a NaN, infinite, negative or malformed value of it is dropped
  (data-parallel vLLM reports NaN for an engine without blocks) and the request gauges stay.
- Robustness: garbage, empty input, HTML error pages, negative or non-finite values and
  malformed lines of our own gauges give None; a malformed *unrelated* line does not hide the
  gauges (only our families' lines reach the parser). Hypothesis checks that no text raises.
"""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hooks.observe.engines import EngineReading, parse_engine_metrics
from tests.observe.engines import llamacpp_exposition, sample, vllm_exposition


def test_vllm_sample_sums_running_and_waiting_over_every_engine() -> None:
    reading = parse_engine_metrics(sample("vllm.txt"))
    assert reading == EngineReading("vllm", running=5.0, waiting=1.0, kv_cache_usage=0.4212)
    assert reading.in_flight == 6
    assert reading.source == "vllm /metrics"


def test_llamacpp_sample_reads_processing_and_deferred() -> None:
    reading = parse_engine_metrics(sample("llamacpp.txt"))
    assert reading == EngineReading("llama.cpp", running=4.0, waiting=3.0)
    assert reading.in_flight == 7
    assert reading.source == "llama.cpp /metrics"


@pytest.mark.parametrize(
    ("running", "waiting", "expected"),
    [
        pytest.param((0,), (0,), 0, id="idle-single-engine"),
        pytest.param((8,), (0,), 8, id="full-batch"),
        pytest.param((4, 4, 4, 4), (1, 0, 2, 0), 19, id="four-engines"),
    ],
)
def test_vllm_label_sets_are_summed(
    running: tuple[int, ...], waiting: tuple[int, ...], expected: int
) -> None:
    reading = parse_engine_metrics(vllm_exposition(running, waiting))
    assert reading is not None and reading.in_flight == expected


def test_older_vllm_without_engine_label_and_with_gpu_cache_gauge() -> None:
    text = (
        "# HELP vllm:num_requests_running Number of requests currently running on GPU.\n"
        "# TYPE vllm:num_requests_running gauge\n"
        'vllm:num_requests_running{model_name="meta-llama/Llama-3.1-8B-Instruct"} 2.0\n'
        "# HELP vllm:num_requests_swapped Number of requests swapped to CPU.\n"
        "# TYPE vllm:num_requests_swapped gauge\n"
        'vllm:num_requests_swapped{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.0\n'
        "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n"
        "# TYPE vllm:num_requests_waiting gauge\n"
        'vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct"} 5.0\n'
        "# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.\n"
        "# TYPE vllm:gpu_cache_usage_perc gauge\n"
        'vllm:gpu_cache_usage_perc{model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.91\n'
    )
    assert parse_engine_metrics(text) == EngineReading("vllm", 2.0, 5.0, 0.91)


def test_vllm_v0_names_with_sample_timestamps() -> None:
    assert parse_engine_metrics(sample("vllm-v0.txt")) == EngineReading("vllm", 7.0, 2.0, 0.8734)


def test_llamacpp_build_that_still_exports_kv_cache_usage() -> None:
    reading = parse_engine_metrics(sample("llamacpp-kv.txt"))
    assert reading == EngineReading("llama.cpp", running=1.0, waiting=0.0, kv_cache_usage=0.3125)


_ENGINE_1_KV = 'vllm:kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen3.6-32B-Instruct"} 0.3307'


@pytest.mark.parametrize(
    ("engine_1_kv", "expected_kv"),
    [
        pytest.param("NaN", 0.4212, id="nan"),
        pytest.param("+Inf", 0.4212, id="infinite"),
        pytest.param("-0.5", 0.4212, id="negative"),
        pytest.param("0.97", 0.97, id="finite-highest-wins"),
    ],
)
def test_an_unusable_kv_cache_value_is_dropped_and_the_request_gauges_stay(
    engine_1_kv: str, expected_kv: float
) -> None:
    text = sample("vllm.txt").replace(_ENGINE_1_KV, _ENGINE_1_KV[: -len("0.3307")] + engine_1_kv)
    assert text != sample("vllm.txt")
    assert parse_engine_metrics(text) == EngineReading("vllm", 5.0, 1.0, expected_kv)


def test_kv_cache_nan_on_every_engine_leaves_only_the_kv_reading_unknown() -> None:
    text = re.sub(r"(?m)^(vllm:kv_cache_usage_perc\{.*\}) \S+$", r"\1 NaN", sample("vllm.txt"))
    assert text.count(" NaN") == 2
    assert parse_engine_metrics(text) == EngineReading("vllm", 5.0, 1.0, None)


def test_a_malformed_kv_cache_line_does_not_void_the_request_gauges(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = sample("llamacpp-kv.txt").replace(
        "llamacpp:kv_cache_usage_ratio 0.3125", "llamacpp:kv_cache_usage_ratio 0,3125"
    )
    with caplog.at_level(logging.DEBUG, logger="hooks.observe.engines"):
        reading = parse_engine_metrics(text)
    assert reading == EngineReading("llama.cpp", 1.0, 0.0, None)
    assert "KV-cache lines do not parse" in caplog.text


def test_a_dropped_kv_value_is_logged_at_debug_level(caplog: pytest.LogCaptureFixture) -> None:
    text = sample("llamacpp-kv.txt").replace("usage_ratio 0.3125", "usage_ratio NaN")
    with caplog.at_level(logging.DEBUG, logger="hooks.observe.engines"):
        assert parse_engine_metrics(text) == EngineReading("llama.cpp", 1.0, 0.0, None)
    assert "llamacpp:kv_cache_usage_ratio nan is not usable; dropped" in caplog.text


def test_llamacpp_behind_a_proxy_with_its_own_histograms() -> None:
    proxy = (
        "# HELP proxy_request_duration_seconds Upstream request duration.\n"
        "# TYPE proxy_request_duration_seconds histogram\n"
        'proxy_request_duration_seconds_bucket{le="0.5"} 10\n'
        'proxy_request_duration_seconds_bucket{le="+Inf"} 12\n'
        "proxy_request_duration_seconds_sum 4.2\n"
        "proxy_request_duration_seconds_count 12\n"
    )
    reading = parse_engine_metrics(proxy + llamacpp_exposition(2, 0) + proxy)
    assert reading is not None and (reading.engine, reading.in_flight) == ("llama.cpp", 2)


def test_crlf_line_endings_are_accepted() -> None:
    reading = parse_engine_metrics(sample("llamacpp.txt").replace("\n", "\r\n"))
    assert reading is not None and reading.in_flight == 7


def test_fractional_gauges_round_to_the_nearest_request() -> None:
    reading = parse_engine_metrics(llamacpp_exposition(2.6, 0))
    assert reading is not None and reading.in_flight == 3


def test_an_unrelated_malformed_line_does_not_hide_the_gauges() -> None:
    text = "this line is { not prometheus\n" + sample("vllm.txt") + "http_x{le=} oops\n"
    reading = parse_engine_metrics(text)
    assert reading is not None and reading.in_flight == 6


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("\n\n   \n", id="blank-lines"),
        pytest.param("<html><body>502 Bad Gateway</body></html>\n", id="html-error-page"),
        pytest.param('{"object": "error", "message": "Not Found"}', id="json"),
        pytest.param("\x00\x01\x02garbage\xff", id="binary-garbage"),
        pytest.param(sample("vllm.txt").replace("vllm:", "sglang:"), id="another-engine"),
        pytest.param(
            "\n".join(
                line
                for line in sample("vllm.txt").splitlines()
                if "num_requests_waiting" not in line
            ),
            id="vllm-waiting-missing",
        ),
        pytest.param(
            "\n".join(
                line
                for line in sample("llamacpp.txt").splitlines()
                if "requests_processing" not in line
            ),
            id="llamacpp-processing-missing",
        ),
        pytest.param(llamacpp_exposition(-1, 0), id="negative"),
        pytest.param(
            sample("llamacpp.txt").replace(
                "llamacpp:requests_deferred 3", "llamacpp:requests_deferred NaN"
            ),
            id="nan",
        ),
        pytest.param(
            sample("llamacpp.txt").replace(
                "llamacpp:requests_deferred 3", "llamacpp:requests_deferred +Inf"
            ),
            id="infinite",
        ),
        pytest.param(
            sample("llamacpp.txt").replace(
                "llamacpp:requests_deferred 3", "llamacpp:requests_deferred three"
            ),
            id="malformed-own-gauge",
        ),
        pytest.param(
            sample("vllm.txt").replace(
                'vllm:num_requests_running{engine="1"', "vllm:num_requests_running{engine=1"
            ),
            id="malformed-own-labels",
        ),
    ],
)
def test_no_reading_from_garbage_or_incomplete_input(text: str) -> None:
    assert parse_engine_metrics(text) is None


def test_a_body_cut_mid_line_is_not_read_as_a_smaller_count() -> None:
    text = llamacpp_exposition(4, 3)
    cut = text[: text.index("llamacpp:requests_deferred 3") + len("llamacpp:requests_deferred")]
    assert parse_engine_metrics(cut) is None


@given(st.text(max_size=400))
def test_parsing_never_raises(text: str) -> None:
    reading = parse_engine_metrics(text)
    assert reading is None or reading.in_flight >= 0


@given(
    st.lists(st.integers(0, 512), min_size=1, max_size=8),
    st.lists(st.integers(0, 512), min_size=1, max_size=8),
)
def test_in_flight_is_the_exact_sum_for_whole_gauges(
    running: list[int], waiting: list[int]
) -> None:
    reading = parse_engine_metrics(vllm_exposition(tuple(running), tuple(waiting)))
    assert reading is not None and reading.in_flight == sum(running) + sum(waiting)
