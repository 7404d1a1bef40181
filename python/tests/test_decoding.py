"""The text of streamed output, decoded lazily, is what Python's own
incremental UTF-8 decoder gives for the same chunks."""

import codecs
import random

import subrt
from subrt.models import _Decoders

# Whole characters of every length, invalid bytes, truncated sequences,
# surrogates and overlong forms: what a split can fall inside of.
PIECES = [
    b"a", b"\xc3\xa9", b"\xe2\x82\xac", b"\xf0\x9f\x98\x80", b"\xff", b"\x80",
    b"\xe2\x82", b"\xf0\x9f", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80",
]


def texts(chunks):
    decoders = _Decoders()
    # Made as the runtime makes its events: text decoded when read.
    events = [
        subrt.RuntimeEvent._output("stdout", "command", c, decoders.decode("stdout", "command", c))
        for c in chunks
    ]
    rest = [text for _, _, text in decoders.flush()]
    return [e.text for e in events] + [rest[0] if rest else ""]


def reference(chunks):
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return [decoder.decode(c) for c in chunks] + [decoder.decode(b"", final=True)]


def test_every_split_decodes_as_an_incremental_decoder_does():
    rng = random.Random(12)
    for _ in range(20000):
        data = b"".join(rng.choice(PIECES) for _ in range(rng.randint(0, 12)))
        cuts = sorted(rng.sample(range(len(data) + 1), rng.randint(0, min(5, len(data) + 1))))
        chunks = [data[i:j] for i, j in zip([0] + cuts, cuts + [len(data)])]
        assert texts(chunks) == reference(chunks), chunks


def test_a_character_split_byte_by_byte_arrives_whole_in_the_last_chunk():
    euro = "€".encode()
    assert texts([euro[:1], euro[1:2], euro[2:]]) == ["", "", "€", ""]


def test_an_unfinished_character_at_the_end_is_one_replacement():
    assert texts([b"ok\xe2\x82"]) == ["ok", "\ufffd"]


def test_text_given_by_a_caller_is_kept_as_given():
    event = subrt.RuntimeEvent(kind="stdout", text="mine", data=b"other")
    assert event.text == "mine"
    assert subrt.RuntimeEvent(kind="finished").text is None, "as the seed's"
