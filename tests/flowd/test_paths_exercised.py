"""Guards that each decode path really does its work, so a broken one cannot hide behind another.

decode() falls back to decode_frame for any row a batch decoder leaves undecided, and decode_frame
gives the same answer, so a compiled extract (or a numpy decoder) that gave up on every IPv4 or IPv6
frame would still pass every comparison. Here ordinary frames (Ethernet, one VLAN tag, IPv4 and IPv6,
TCP, UDP and ICMP) must be decoded without a single decode_frame call: by the compiled extract when it
is built, and by the numpy decoders, which run here whatever FLOWD_NO_FASTPATH says.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from flowd.capture.files import open_capture
from flowd.core import decode as decoding
from flowd.core import decode_numpy, frame_rules
from flowd.model.batch import FrameBatch
from flowd.native import compiled
from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec

PLAIN = SynthSpec(packets=6000, flows=600, seed=4, ipv6_share=0.4, vlan_share=0.2, qinq_share=0.0,
                  mpls_share=0.0, fragment_share=0.0, ipv4_options_share=0.0, damaged_share=0.0,
                  hop_by_hop_share=0.0, arp_share=0.0)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> FrameBatch:
    path = tmp_path_factory.mktemp("plain") / "plain.pcap"
    write_capture(PLAIN, path)
    with open_capture(str(path)) as reader:
        (frames,) = list(reader.batches(1 << 20))
    return frames


@pytest.fixture
def per_frame_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    original = frame_rules.decode_frame

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(frame_rules, "decode_frame", counting)
    return calls


def test_the_numpy_decoders_take_every_ordinary_frame(plain: FrameBatch, per_frame_calls: list[int]) -> None:
    decoded = decode_numpy.decode_numpy(plain)
    assert len(decoded.packets) == len(plain) and per_frame_calls[0] == 0
    assert int((decoded.packets.key[:, 10] != 0xFF).sum()) > 1000  # IPv6 rows were among them


def test_the_compiled_extract_takes_every_ordinary_frame(plain: FrameBatch, per_frame_calls: list[int],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWD_NO_FASTPATH", raising=False)
    extract = compiled("extract")
    if extract is None:
        if os.environ.get("CI") == "true":
            pytest.fail("flowd.native._fastpath is not built (CI builds it: tests/run.sh installs gcc and "
                        "python3-dev)")
        pytest.skip("flowd.native._fastpath is not built")
    decoded = decoding._decode_compiled(plain, extract)
    assert len(decoded.packets) == len(plain) and per_frame_calls[0] == 0


def test_decode_uses_the_path_the_run_asked_for(plain: FrameBatch, per_frame_calls: list[int]) -> None:
    """Under FLOWD_NO_FASTPATH=1 decode() is the numpy path; otherwise, once built, the compiled one."""
    pure = os.environ.get("FLOWD_NO_FASTPATH") == "1"
    assert (decoding._compiled_extract() is None) == (pure or compiled("extract") is None)
    assert len(decoding.decode(plain).packets) == len(plain) and per_frame_calls[0] == 0


def test_ci_builds_every_extension() -> None:
    """Every extension setup.py declares is built (tests/run.sh installs the compiler and sets CI=true)."""
    if os.environ.get("CI") != "true":
        pytest.skip("only CI insists on the compiled extensions")
    setup = Path(decoding.__file__).parents[2].joinpath("setup.py").read_text()
    modules = re.findall(r'Extension\("(flowd\.native\.\w+)"', setup)
    assert len(modules) >= 4, modules
    for module in modules:
        __import__(module)
    assert Path(decoding.__file__).parent.parent.joinpath("native").is_dir()
