"""Property-based fuzzing: garbage in, counted and skipped, never an exception.

Four tests x 2,500-5,000 examples = 15,000 examples per default run.
"""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings, strategies as st

from custom_components.ecoflow_power.ecoflow.envelope import EnvelopeError, parse_envelope
from custom_components.ecoflow_power.ecoflow.models import DeviceFamily, identify_model
from custom_components.ecoflow_power.ecoflow.proto.envelope_pb2 import HeaderMessage
from custom_components.ecoflow_power.ecoflow.protobuf_decoder import PdataError, decode_frame
from custom_components.ecoflow_power.ecoflow.state import GridStatus, MessageSource
from custom_components.ecoflow_power.ecoflow.tracker import DeviceTracker

FUZZ = settings(max_examples=5_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ADDRESSES = [(254, 21), (254, 22), (32, 2), (32, 50), (20, 1), (254, 99)]


def wrap(pdata: bytes, cmd_func: int, cmd_id: int, seq: int, enc_type: int) -> bytes:
    message = HeaderMessage()
    header = message.header.add()
    header.pdata, header.cmd_func, header.cmd_id = pdata, cmd_func, cmd_id
    header.seq, header.enc_type, header.src = seq, enc_type, 2
    return message.SerializeToString()


@FUZZ
@given(st.binary(max_size=600))
def test_envelope_bytes_never_escape(data: bytes) -> None:
    try:
        frames = parse_envelope(data)
    except EnvelopeError:
        return
    for frame in frames:
        for family in (DeviceFamily.RIVER3, DeviceFamily.POWERSTREAM, DeviceFamily.UNKNOWN):
            with contextlib.suppress(PdataError):
                decode_frame(frame, family)


@FUZZ
@given(
    st.binary(max_size=600),
    st.sampled_from(ADDRESSES),
    st.integers(min_value=-(2**31), max_value=2**31 - 1),
    st.sampled_from([0, 1]),
)
def test_pdata_garbage_through_tracker_never_raises_never_lost(
    pdata: bytes, address: tuple[int, int], seq: int, enc_type: int
) -> None:
    tracker = DeviceTracker("R651FUZZ", identify_model("R651FUZZ", None))
    tracker.ingest(wrap(pdata, *address, seq, enc_type), MessageSource.PROPERTY, 1000.0)
    stats = tracker.stats
    assert stats.messages == 1
    assert tracker.snapshot(1000.0, 60.0).grid is not GridStatus.LOST or stats.decoded == 1


@settings(max_examples=2_500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_never_read_as_grid_lost(data: bytes) -> None:
    # Raw garbage must never produce the one verdict that shuts machines down.
    tracker = DeviceTracker("R651FUZZ", identify_model("R651FUZZ", None))
    tracker.ingest(data, MessageSource.PROPERTY, 1000.0)
    tracker.ingest(data.hex(), MessageSource.PROPERTY, 1001.0)
    assert tracker.snapshot(1001.0, 60.0).grid is not GridStatus.LOST


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=2_500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(
            ["code", "data", "params", "param", "typeCode", "cmdFunc", "cmdId", "pd.soc", "x"]
        ),
        JSON_VALUES,
        max_size=5,
    ),
    st.sampled_from(list(MessageSource)),
)
def test_json_shapes_never_raise(message: dict[str, object], source: MessageSource) -> None:
    for sn in ("R331FUZZ", "DCEBZFUZZ", "HW51FUZZ"):
        tracker = DeviceTracker(sn, identify_model(sn, None))
        tracker.ingest(message, source, 1000.0)
        tracker.snapshot(1000.0, 60.0)
        assert tracker.stats.messages == 1
