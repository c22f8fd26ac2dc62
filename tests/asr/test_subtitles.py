from typing import Any

import pytest

from vidray.asr.subtitles import parse_track, pick_track, split_words, transcribe_subtitles
from vidray.config import AsrConfig, SubtitlesConfig
from vidray.schema import Word

# YouTube automatic captions as yt-dlp saves them in VTT: each cue shows the previous line again
# above the new one, a 10 ms cue repeats the finished line, and new words carry inline times;
# `\x20` is the line of one space YouTube writes for an empty row.
AUTO_VTT = """WEBVTT
Kind: captions
Language: en

00:00:00.160 --> 00:00:02.550 align:start position:0%
\x20
hello<00:00:00.640><c> everyone</c><00:00:00.960><c> and</c><00:00:01.120><c> welcome</c>

00:00:02.550 --> 00:00:02.560 align:start position:0%
hello everyone and welcome
\x20

00:00:02.560 --> 00:00:05.350 align:start position:0%
hello everyone and welcome
to<00:00:02.800><c> the</c><00:00:03.040><c> channel</c><00:00:03.600><c> [Music]</c>

00:00:05.350 --> 00:00:05.360 align:start position:0%
to the channel [Music]
\x20

00:00:05.360 --> 00:00:07.000 align:start position:0%
to the channel [Music]
today<00:00:05.900><c> we&#39;re</c><00:00:06.100><c> cooking</c>
"""

CREATOR_VTT = """WEBVTT
Kind: captions
Language: en

STYLE
::cue { color: yellow }

NOTE made by hand,
two lines of notes

intro
00:00:01.000 --> 00:00:02.000 line:90% position:50% align:middle
<v Chef>Salt&nbsp;&amp; pepper</v>

00:00:02.500 --> 00:00:03.000
&lt;whisk&gt;
"""

AUTO_JSON3 = """{
  "wireMagic": "pb3",
  "pens": [ {  } ],
  "wsWinStyles": [ {  }, { "mhModeHint": 2, "juJustifCode": 0, "sdScrollDir": 3 } ],
  "wpWinPositions": [ {  }, { "apPoint": 6, "ahHorPos": 20, "avVerPos": 100, "rcRows": 2, "ccCols": 40 } ],
  "events": [ {
    "tStartMs": 0, "dDurationMs": 6030, "id": 1, "wpWinPosId": 1, "wsWinStyleId": 1
  }, {
    "tStartMs": 240, "dDurationMs": 3600, "wWinId": 1,
    "segs": [ { "utf8": "so", "acAsrConf": 0 }, { "utf8": " today", "tOffsetMs": 320, "acAsrConf": 0 },
              { "utf8": " we're", "tOffsetMs": 720, "acAsrConf": 0 }, { "utf8": " making", "tOffsetMs": 1000, "acAsrConf": 0 } ]
  }, {
    "tStartMs": 2150, "dDurationMs": 1690, "wWinId": 1, "aAppend": 1,
    "segs": [ { "utf8": "\\n" } ]
  }, {
    "tStartMs": 2160, "dDurationMs": 3870, "wWinId": 1,
    "segs": [ { "utf8": "a", "acAsrConf": 0 }, { "utf8": " well-known", "tOffsetMs": 240, "acAsrConf": 0 },
              { "utf8": " Italian", "tOffsetMs": 800, "acAsrConf": 0 }, { "utf8": " dish", "tOffsetMs": 1280, "acAsrConf": 0 } ]
  }, {
    "tStartMs": 6030, "dDurationMs": 2000, "wWinId": 1,
    "segs": [ { "utf8": "[Music]" } ]
  } ]
}"""

CREATOR_JSON3 = """{"wireMagic": "pb3", "pens": [{}], "events": [
  {"tStartMs": 1000, "dDurationMs": 2000, "segs": [{"utf8": "Fresh pasta\\nneeds flour"}]}
]}"""

CREATOR_SRV3 = """<?xml version="1.0" encoding="utf-8" ?><timedtext format="3">
<head>
<pen id="1" b="1"/>
</head>
<body>
<p t="1200" d="2000">Fresh pasta</p>
<p t="3500" d="1000">CHEF: <s p="1">Salt</s> well!</p>
<p t="5000" d="1000">[Music]</p>
<p t="6000" d="900">&gt;&gt; don&#39;t stop</p>
</body>
</timedtext>
"""

AUTO_SRV3 = """<?xml version="1.0" encoding="utf-8" ?><timedtext format="3">
<head>
<ws id="0"/>
<ws id="1" mh="2" ju="0" sd="3"/>
<wp id="0"/>
<wp id="1" ap="6" ah="20" av="100" rc="2" cc="40"/>
</head>
<body>
<w t="0" id="1" wp="1" ws="1"/>
<p t="160" d="4400" w="1"><s ac="0">hello</s><s t="480" ac="0"> everyone</s></p>
<p t="2550" d="2010" w="1" a="1">
</p>
<p t="2560" d="3000" w="1"><s ac="0">welcome</s><s t="640" ac="0"> back</s></p>
</body>
</timedtext>
"""

SRV2 = (
    '<?xml version="1.0" encoding="utf-8" ?><timedtext><window t="0" id="1" op="define" rc="15"'
    ' cc="32" ap="7" ah="50" av="95"/><text w="1" t="1000" d="1000">knead</text>'
    '<text w="1" t="2000" d="1600" append="1">the dough</text></timedtext>'
)

SRV1 = (
    '<?xml version="1.0" encoding="utf-8" ?><transcript><text start="0.5" dur="2">it&amp;#39;s'
    ' time</text><text start="2.5" dur="1.8">&amp;gt;&amp;gt; don&amp;#39;t stop</text>'
    '<text start="4.5" dur="1">[Applause]</text></transcript>'
)

TTML = """<?xml version="1.0" encoding="utf-8" ?>
<tt xml:lang="en" xmlns="http://www.w3.org/ns/ttml" xmlns:tts="http://www.w3.org/ns/ttml#styling" xmlns:ttm="http://www.w3.org/ns/ttml#metadata" xmlns:ttp="http://www.w3.org/ns/ttml#parameter" ttp:profile="http://www.w3.org/TR/profile/sdp-us" >
<head>
<styling><style xml:id="s1" tts:textAlign="center" tts:extent="90% 90%" tts:origin="5% 5%" tts:displayAlign="after"/><style xml:id="s2" tts:fontSize=".72c" tts:backgroundColor="black" tts:color="white"/></styling>
<layout><region xml:id="r1" style="s1"/></layout>
</head>
<body region="r1">
<div>
<p begin="00:00:00.500" end="00:00:02.500" style="s2">Fresh pasta<br />needs flour</p>
<p begin="00:00:03.000" end="00:00:04.000" style="s2"><span tts:fontStyle="italic">(laughs)</span> Thanks!</p>
</div>
</body>
</tt>
"""

TTML_TICKS = """<?xml version="1.0" encoding="utf-8"?>
<tt xmlns="http://www.w3.org/ns/ttml" xmlns:ttp="http://www.w3.org/ns/ttml#parameter" ttp:tickRate="10000000" ttp:frameRate="30">
<body><div>
<p begin="15000000t" end="25000000t">Olive oil</p>
<p begin="3s" dur="500ms">now</p>
<p begin="00:00:04:15" end="00:00:05:00">Stir</p>
</div></body>
</tt>
"""

SRT = """1
00:00:01,000 --> 00:00:03,400
<i>JOHN: Hello there,</i>
well-known chef.

2
00:00:03,500 --> 00:00:04,500
(laughs) ♪ la la la ♪

3
00:00:05,000 --> 00:00:06,400
{\\an8}- Don't go!
"""


def timed(words: list[Word]) -> list[tuple[str, float, float]]:
    return [(w.word, w.start, w.end) for w in words]


def test_youtube_automatic_vtt_keeps_each_word_once_with_its_inline_time() -> None:
    words = parse_track(AUTO_VTT, "vtt")
    assert timed(words) == [
        ("hello", 0.16, 0.64),
        ("everyone", 0.64, 0.96),
        ("and", 0.96, 1.12),
        ("welcome", 1.12, 2.55),
        ("to", 2.56, 2.8),
        ("the", 2.8, 3.04),
        ("channel", 3.04, 3.6),
        ("today", 5.36, 5.9),
        ("we're", 5.9, 6.1),
        ("cooking", 6.1, 7.0),
    ]
    assert not any(w.interpolated for w in words)
    assert {w.score for w in words} == {1.0}


def test_creator_vtt_skips_style_and_notes_and_decodes_entities() -> None:
    words = parse_track(CREATOR_VTT, "vtt")
    assert timed(words) == [("Salt", 1.0, 1.4), ("pepper", 1.4, 2.0), ("whisk", 2.5, 3.0)]
    assert all(w.interpolated for w in words)


def test_automatic_json3_uses_word_offsets_and_ends_a_line_at_the_next_word() -> None:
    words = parse_track(AUTO_JSON3, "json3")
    assert timed(words) == [
        ("so", 0.24, 0.56),
        ("today", 0.56, 0.96),
        ("we're", 0.96, 1.24),
        ("making", 1.24, 2.16),  # its event lasts to 3.84, while the next line is spoken
        ("a", 2.16, 2.4),
        ("well-known", 2.4, 2.96),
        ("Italian", 2.96, 3.44),
        ("dish", 3.44, 6.03),
    ]
    assert not any(w.interpolated for w in words)


def test_creator_json3_shares_the_event_among_its_words() -> None:
    words = parse_track(CREATOR_JSON3, "json3")
    assert timed(words) == [
        ("Fresh", 1.0, 1.5),
        ("pasta", 1.5, 2.0),
        ("needs", 2.0, 2.5),
        ("flour", 2.5, 3.0),
    ]
    assert all(w.interpolated for w in words)


def test_creator_srv3_drops_speakers_and_sounds() -> None:
    words = parse_track(CREATOR_SRV3, "srv3")
    assert timed(words) == [
        ("Fresh", 1.2, 2.2),
        ("pasta", 2.2, 3.2),
        ("Salt", 3.5, 4.0),
        ("well", 4.0, 4.5),
        ("don't", 6.0, 6.5),
        ("stop", 6.5, 6.9),
    ]
    assert all(w.interpolated for w in words)


def test_automatic_srv3_uses_word_offsets() -> None:
    words = parse_track(AUTO_SRV3, "srv3")
    assert timed(words) == [
        ("hello", 0.16, 0.64),
        ("everyone", 0.64, 2.56),
        ("welcome", 2.56, 3.2),
        ("back", 3.2, 5.56),
    ]
    assert not any(w.interpolated for w in words)


def test_srv2_times_are_milliseconds() -> None:
    assert timed(parse_track(SRV2, "srv2")) == [
        ("knead", 1.0, 2.0),
        ("the", 2.0, 2.6),
        ("dough", 2.6, 3.6),
    ]
    body = '<timedtext><body><p t="500" d="1000">Boil eggs</p></body></timedtext>'
    assert timed(parse_track(body, "srv2")) == [("Boil", 0.5, 1.0), ("eggs", 1.0, 1.5)]


def test_srv1_double_escaped_entities() -> None:
    assert timed(parse_track(SRV1, "srv1")) == [
        ("it's", 0.5, 1.5),
        ("time", 1.5, 2.5),
        ("don't", 2.5, 3.5),
        ("stop", 3.5, 4.3),
    ]


def test_ttml_clock_times_and_line_breaks() -> None:
    assert timed(parse_track(TTML, "ttml")) == [
        ("Fresh", 0.5, 1.0),
        ("pasta", 1.0, 1.5),
        ("needs", 1.5, 2.0),
        ("flour", 2.0, 2.5),
        ("Thanks", 3.0, 4.0),
    ]


def test_ttml_ticks_offsets_and_frames() -> None:
    assert timed(parse_track(TTML_TICKS, "ttml")) == [
        ("Olive", 1.5, 2.125),
        ("oil", 2.125, 2.5),
        ("now", 3.0, 3.5),
        ("Stir", 4.5, 5.0),
    ]


def test_srt_strips_tags_speakers_and_lyrics() -> None:
    assert timed(parse_track(SRT, "srt")) == [
        ("Hello", 1.0, 1.5),
        ("there", 1.5, 2.0),
        ("well-known", 2.0, 3.0),
        ("chef", 3.0, 3.4),
        ("Don't", 5.0, 6.0),
        ("go", 6.0, 6.4),
    ]


def test_creator_tracks_keep_lines_said_twice() -> None:
    srt = "1\n00:00:01,000 --> 00:00:02,000\nNo!\n\n2\n00:00:02,000 --> 00:00:03,000\nNo!\n"
    assert timed(parse_track(srt, "srt")) == [("No", 1.0, 2.0), ("No", 2.0, 3.0)]
    vtt = "WEBVTT\n\n00:00:01.000 --> 00:00:02.000\nRun\n\n00:00:02.000 --> 00:00:03.000\nRun\n"
    assert [w.word for w in parse_track(vtt, "vtt")] == ["Run", "Run"]


def test_automatic_vtt_keeps_a_new_line_equal_to_the_one_shown() -> None:
    line = "go<{}><c> team</c><{}><c> go</c>"
    vtt = f"""WEBVTT

00:00:01.000 --> 00:00:02.000 align:start position:0%
\x20
{line.format("00:00:01.300", "00:00:01.600")}

00:00:02.000 --> 00:00:02.010 align:start position:0%
go team go
\x20

00:00:02.010 --> 00:00:03.000 align:start position:0%
go team go
{line.format("00:00:02.300", "00:00:02.600")}

00:00:03.000 --> 00:00:03.010 align:start position:0%
go team go
\x20
"""
    assert timed(parse_track(vtt, "vtt")) == [
        ("go", 1.0, 1.3),
        ("team", 1.3, 1.6),
        ("go", 1.6, 2.0),
        ("go", 2.01, 2.3),
        ("team", 2.3, 2.6),
        ("go", 2.6, 3.0),
    ]


def test_a_speaker_label_on_a_later_line_is_not_a_word() -> None:
    srt = "1\n00:00:01,000 --> 00:00:03,000\nJOHN: hi there\nMARY: hello\n"
    assert [w.word for w in parse_track(srt, "srt")] == ["hi", "there", "hello"]
    ttml = '<tt><body><p begin="1s" end="2s">JOHN: hi<br/>MARY: hello</p></body></tt>'
    assert [w.word for w in parse_track(ttml, "dfxp")] == ["hi", "hello"]


def test_srt_without_blank_lines_drops_the_cue_numbers() -> None:
    srt = "1\n00:00:01,000 --> 00:00:02,000\nHello\n2\n00:00:02,000 --> 00:00:03,000\nworld\n"
    assert timed(parse_track(srt, "srt")) == [("Hello", 1.0, 2.0), ("world", 2.0, 3.0)]


def test_dfxp_xml_sbv_and_ass_tracks() -> None:
    for ext in ("dfxp", "xml"):
        assert [w.word for w in parse_track(TTML, ext)] == [
            "Fresh",
            "pasta",
            "needs",
            "flour",
            "Thanks",
        ]
    assert [w.word for w in parse_track(SRV1, "xml")] == ["it's", "time", "don't", "stop"]
    sbv = "0:00:01.000,0:00:02.000\nBoil the\nwater\n\n0:00:02.500,0:00:03.000\n[Music]\n"
    assert timed(parse_track(sbv, "sbv")) == [
        ("Boil", 1.0, 1.333),
        ("the", 1.333, 1.583),
        ("water", 1.583, 2.0),
    ]
    ass = """[Script Info]
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize
Style: Default,Arial,20

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Comment: 0,0:00:00.00,0:00:01.00,Default,,0,0,0,,not said
Dialogue: 0,0:00:02.00,0:00:03.00,Default,Chef,0,0,0,,{\\i1}Salt,{\\i0} pepper\\Noil
Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,{\\an8}Now
"""
    assert timed(parse_track(ass, "ass")) == [
        ("Now", 1.0, 2.0),
        ("Salt", 2.0, 2.308),
        ("pepper", 2.308, 2.769),
        ("oil", 2.769, 3.0),
    ]


def test_split_words_keeps_inner_apostrophes_and_hyphens() -> None:
    text = "[Music] >> JOHN: don't (laughs) ♪ la la ♪ \"well-known\" ... 'quoted'"
    assert split_words(text) == ["don't", "well-known", "quoted"]


@pytest.mark.parametrize(
    ("text", "ext"),
    [
        (AUTO_VTT, "vtt"),
        (AUTO_JSON3, "json3"),
        (CREATOR_SRV3, "srv3"),
        (AUTO_SRV3, "srv3"),
        (SRV1, "srv1"),
        (TTML, "ttml"),
        (SRT, "srt"),
    ],
)
def test_words_are_sorted_unique_and_well_formed(text: str, ext: str) -> None:
    words = parse_track(text, ext)
    assert words == sorted(words, key=lambda w: w.start)
    assert len({(w.word, w.start) for w in words}) == len(words)
    assert all(0 <= w.start <= w.end for w in words)


@pytest.mark.parametrize(
    ("text", "ext"),
    [
        ("", "vtt"),
        ("WEBVTT\n\n00:00:01.000 --> 00:00:00.500\n", "vtt"),
        ("garbage\x00\xff with no cues", "srt"),
        ("not xml <<<", "ttml"),
        ('<transcript><text start="soon">hi</text></transcript>', "srv1"),
        ('<tt><body><p begin="later" end="never">hi</p></body></tt>', "ttml"),
        ("{", "json3"),
        ("[1, 2]", "json3"),
        ('{"events": "oops"}', "json3"),
        ('{"events": [{"tStartMs": "x", "segs": [{"utf8": "hi"}]}]}', "json3"),
        ("Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,hi", "smi"),
        ("Dialogue: 0,0:00:01.00", "ass"),
    ],
)
def test_malformed_or_unknown_tracks_have_no_words(text: str, ext: str) -> None:
    assert parse_track(text, ext) == []


def track(lang: str, ext: str, automatic: bool, text: str) -> dict[str, Any]:
    return {"lang": lang, "ext": ext, "automatic": automatic, "text": text}


AUTO_EN = track("en", "vtt", True, AUTO_VTT)
CREATOR_EN_US = track("en-US", "srt", False, SRT)
CREATOR_DE = track("de", "ttml", False, TTML)
LIVE_CHAT = track("live_chat", "json", False, '{"replayChatItemAction": {"actions": []}}')


def test_creator_captions_beat_automatic_ones_of_the_same_language() -> None:
    assert pick_track([AUTO_EN, CREATOR_EN_US], SubtitlesConfig(), None) is CREATOR_EN_US


def test_preferred_language_comes_before_creator_captions() -> None:
    cfg = SubtitlesConfig(languages=["en", "de"])
    assert pick_track([CREATOR_DE, AUTO_EN], cfg, None) is AUTO_EN
    cfg = SubtitlesConfig(languages=["fr"])
    assert pick_track([CREATOR_DE, AUTO_EN], cfg, "de") is None  # explicit languages win


def test_the_asr_language_is_preferred_when_languages_are_left_default() -> None:
    assert pick_track([CREATOR_EN_US, CREATOR_DE], SubtitlesConfig(), "de") is CREATOR_DE


def test_automatic_captions_can_be_refused() -> None:
    assert pick_track([AUTO_EN], SubtitlesConfig(automatic=False), None) is None


def test_tracks_without_words_and_live_chat_are_skipped() -> None:
    broken = track("en", "srt", False, "garbage")
    cfg = SubtitlesConfig(languages=["*"])
    assert pick_track([LIVE_CHAT, broken, AUTO_EN], cfg, None) is AUTO_EN
    assert pick_track([LIVE_CHAT, broken], cfg, None) is None


def test_formats_with_word_times_come_first() -> None:
    json3 = track("en", "json3", True, AUTO_JSON3)
    assert pick_track([AUTO_EN, json3], SubtitlesConfig(), None) is json3


def test_machine_translated_automatic_captions_are_skipped() -> None:
    original = track("de-orig", "vtt", True, AUTO_VTT)
    assert pick_track([AUTO_EN, original], SubtitlesConfig(), None) is None
    assert pick_track([AUTO_EN, original], SubtitlesConfig(languages=["*"]), None) is original
    english = track("en-orig", "vtt", True, AUTO_VTT)
    assert pick_track([AUTO_EN, english], SubtitlesConfig(), None) is AUTO_EN


def test_transcribe_subtitles_describes_the_track() -> None:
    found = transcribe_subtitles([track("en", "json3", True, AUTO_JSON3)], AsrConfig())
    assert found is not None
    words, language, model = found
    assert (language, model, words[0].word) == ("en", "automatic-captions:en:json3", "so")
    found = transcribe_subtitles([track("en-GB", "vtt", False, CREATOR_VTT)], AsrConfig())
    assert found is not None and found[1:] == ("en", "captions:en-GB:vtt")
    assert transcribe_subtitles([], AsrConfig()) is None
    assert transcribe_subtitles([LIVE_CHAT], AsrConfig()) is None
