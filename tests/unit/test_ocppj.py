"""messages.ocppj: OCPP-J 1.6 framing (§4.2), and the CALLERROR every malformed CALL is answered with."""

from __future__ import annotations

import json

import pytest

from messages import ocppj
from messages.frozen import freeze
from messages.ocppj import Call, CallError, CallResult, FrameError

pytestmark = pytest.mark.timeout(30)


def rejection(text: str, max_bytes: int | None = None) -> FrameError:
    with pytest.raises(FrameError) as info:
        ocppj.parse(text, max_bytes)
    return info.value


def reply_to(text: str, max_bytes: int | None = None) -> CallError:
    reply = rejection(text, max_bytes).reply
    assert reply is not None, "a malformed CALL must be answered"
    return reply


# --- round trips ------------------------------------------------------------------------------


def test_a_call_survives_encode_and_parse():
    call = Call("19223201", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    assert ocppj.parse(ocppj.encode(call)) == call


def test_a_call_result_survives_encode_and_parse():
    result = CallResult("19223201", {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 300})
    assert ocppj.parse(ocppj.encode(result)) == result


def test_a_call_error_survives_encode_and_parse():
    error = CallError("162376037", "NotSupported", "SetDisplayMessage not supported", {"hint": "x"})
    assert ocppj.parse(ocppj.encode(error)) == error


def test_the_wire_layout_follows_ocpp_j_section_4_2():
    assert json.loads(ocppj.encode(Call("1", "Heartbeat", {}))) == [2, "1", "Heartbeat", {}]
    assert json.loads(ocppj.encode(CallResult("1", {"currentTime": "t"}))) == [3, "1", {"currentTime": "t"}]
    assert json.loads(ocppj.encode(CallError("1", "GenericError", "boom"))) == [4, "1", "GenericError", "boom", {}]


def test_a_call_error_without_details_is_sent_with_an_empty_object():
    assert ocppj.encode(CallError("1", "InternalError", "x", None)).endswith(',{}]')


def test_encoding_is_compact():
    text = ocppj.encode(Call("1", "Authorize", {"idTag": "ABC", "n": [1, 2]}))
    assert text == '[2,"1","Authorize",{"idTag":"ABC","n":[1,2]}]'


def test_frozen_payloads_are_thawed_on_the_wire():
    payload = freeze({"meterValue": [{"sampledValue": [{"value": "1"}]}]})
    text = ocppj.encode(Call("7", "MeterValues", payload))
    assert json.loads(text)[3] == {"meterValue": [{"sampledValue": [{"value": "1"}]}]}


def test_unicode_is_sent_as_is_and_parsed_back():
    call = Call("ü-1", "DataTransfer", {"vendorId": "Zürich ⚡", "data": "日本"})
    text = ocppj.encode(call)
    assert "Zürich ⚡" in text and "\\u" not in text
    assert ocppj.parse(text) == call


def test_escaped_unicode_from_the_csms_is_decoded():
    assert ocppj.parse('[2,"1","DataTransfer",{"vendorId":"\\u00fc"}]').payload == {"vendorId": "ü"}


def test_whitespace_around_the_elements_is_accepted():
    assert ocppj.parse(' [ 2 , "a" , "Heartbeat" , { } ] \n') == Call("a", "Heartbeat", {})


def test_a_call_error_with_only_four_elements_is_accepted_with_empty_details():
    assert ocppj.parse('[4,"9","GenericError","x"]') == CallError("9", "GenericError", "x", {})


def test_a_uniqueid_of_exactly_36_characters_is_accepted():
    uid = "a" * 36
    assert ocppj.parse(f'[2,"{uid}","Heartbeat",{{}}]').unique_id == uid


def test_encoding_something_that_is_not_a_frame_is_a_type_error():
    with pytest.raises(TypeError):
        ocppj.encode({"not": "a frame"})


# --- malformed CALLs are answered -------------------------------------------------------------


def test_text_that_is_not_json_is_a_formation_violation_with_id_minus_one():
    reply = reply_to("hello")
    assert reply.error_code == "FormationViolation"
    assert reply.unique_id == "-1"


def test_broken_json_that_starts_like_a_call_is_answered_with_its_id():
    reply = reply_to('[2,"abc-1","Heartbeat",{')
    assert (reply.unique_id, reply.error_code) == ("abc-1", "FormationViolation")


def test_nan_is_not_json():
    reply = reply_to('[2,"n1","DataTransfer",{"vendorId":"v","data":NaN}]')
    assert (reply.unique_id, reply.error_code) == ("n1", "FormationViolation")


def test_a_json_object_instead_of_an_array_is_a_formation_violation():
    reply = reply_to('{"messageTypeId": 2}')
    assert (reply.unique_id, reply.error_code) == ("-1", "FormationViolation")


@pytest.mark.parametrize("text", ["[]", "[2]", '[2,"id-7"]'])
def test_an_array_too_short_for_any_frame_is_a_formation_violation(text):
    reply = reply_to(text)
    assert reply.error_code == "FormationViolation"
    assert reply.unique_id == ("id-7" if "id-7" in text else "-1")


def test_an_unknown_message_type_id_is_a_formation_violation_answered_with_its_id():
    reply = reply_to('[5,"x1","Heartbeat",{}]')
    assert (reply.unique_id, reply.error_code) == ("x1", "FormationViolation")


@pytest.mark.parametrize("type_id", ['"2"', "true", "2.0", "null"])
def test_a_message_type_id_that_is_not_the_integer_2_3_or_4_is_a_formation_violation(type_id):
    reply = reply_to(f'[{type_id},"x2","Heartbeat",{{}}]')
    assert (reply.unique_id, reply.error_code) == ("x2", "FormationViolation")


@pytest.mark.parametrize("unique_id", ["12", '""', "null", '"' + "x" * 37 + '"', '["a"]'])
def test_a_uniqueid_that_is_not_a_string_of_1_to_36_characters_is_answered_with_minus_one(unique_id):
    reply = reply_to(f'[2,{unique_id},"Heartbeat",{{}}]')
    assert (reply.unique_id, reply.error_code) == ("-1", "FormationViolation")


def test_a_call_with_three_elements_is_a_protocol_error():
    reply = reply_to('[2,"c3","Heartbeat"]')
    assert (reply.unique_id, reply.error_code) == ("c3", "ProtocolError")


def test_a_call_with_five_elements_is_a_protocol_error():
    reply = reply_to('[2,"c5","Heartbeat",{},{}]')
    assert (reply.unique_id, reply.error_code) == ("c5", "ProtocolError")


@pytest.mark.parametrize("payload", ["[]", '"x"', "null", "1"])
def test_a_call_payload_that_is_not_an_object_is_a_formation_violation(payload):
    reply = reply_to(f'[2,"p1","Heartbeat",{payload}]')
    assert (reply.unique_id, reply.error_code) == ("p1", "FormationViolation")


@pytest.mark.parametrize("action", ['""', "7", "null"])
def test_a_call_action_that_is_not_a_non_empty_string_is_a_formation_violation(action):
    reply = reply_to(f'[2,"a1",{action},{{}}]')
    assert (reply.unique_id, reply.error_code) == ("a1", "FormationViolation")


def test_every_reply_is_a_call_error_that_can_be_encoded():
    text = ocppj.encode(reply_to('[2,"e1","Heartbeat"]'))
    assert json.loads(text)[:3] == [4, "e1", "ProtocolError"]


def test_a_very_deeply_nested_frame_is_a_formation_violation_not_a_crash():
    reply = reply_to('[2,"deep","DataTransfer",{"vendorId":"v","data":' + "[" * 100_000 + "]" * 100_000 + "}]")
    assert (reply.unique_id, reply.error_code) == ("deep", "FormationViolation")


# --- size limit -------------------------------------------------------------------------------


def test_a_frame_over_max_bytes_is_refused_and_answered_with_its_id():
    text = '[2,"big-1","DataTransfer",{"vendorId":"v","data":"' + "x" * 2000 + '"}]'
    reply = reply_to(text, max_bytes=1024)
    assert (reply.unique_id, reply.error_code) == ("big-1", "FormationViolation")
    assert "1024" in reply.description


def test_a_frame_at_exactly_max_bytes_is_accepted():
    head, tail = '[2,"ok","DataTransfer",{"vendorId":"v","data":"', '"}]'
    text = head + "x" * (1024 - len(head) - len(tail)) + tail
    assert len(text) == 1024
    assert isinstance(ocppj.parse(text, max_bytes=1024), Call)


def test_the_size_limit_counts_utf8_bytes_not_characters():
    head, tail = '[2,"u8","DataTransfer",{"vendorId":"v","data":"', '"}]'
    text = head + "€" * 400 + tail  # about 450 characters, but 1200+ bytes on the wire
    assert len(text) < 1024 < len(text.encode())
    reply = reply_to(text, max_bytes=1024)
    assert reply.unique_id == "u8"


def test_an_oversized_response_is_dropped_without_a_reply():
    text = '[3,"r1",{"data":"' + "x" * 2000 + '"}]'
    assert rejection(text, max_bytes=1024).reply is None


# --- malformed responses are never answered ---------------------------------------------------


@pytest.mark.parametrize("text", [
    '[3,"r1"]',                         # CALLRESULT without payload
    '[3,"r1",[]]',                      # payload not an object
    '[3,"r1",{},{}]',                   # too many elements
    '[4,"r1","GenericError"]',          # CALLERROR too short
    '[4,"r1",5,"x",{}]',                # error code not a string
    '[4,"r1","GenericError","x",{},1]', # too many elements
    '[3.0,"r1",{}]',                    # type id not an integer
    '[3,17,{}]',                        # uniqueId not a string
    '[4,"","GenericError","x",{}]',     # empty uniqueId
    '[3,"r1",{"a":',                    # not JSON, but clearly a response
    "[3]",
])
def test_a_malformed_response_raises_with_no_reply(text):
    error = rejection(text)
    assert error.reply is None
    assert error.reason


def test_a_call_error_with_a_non_string_description_is_kept_as_text():
    assert ocppj.parse('[4,"r2","GenericError",42,{}]').description == "42"


def test_guess_call_id_finds_the_id_of_a_call_and_nothing_else():
    assert ocppj.guess_call_id('[2, "abc", "Heartbeat"') == "abc"
    assert ocppj.guess_call_id('[3,"abc",{}]') == "-1"
    assert ocppj.guess_call_id("garbage") == "-1"
    assert ocppj.guess_call_id('[2,"' + "x" * 37 + '"') == "-1"


def test_error_codes_keep_the_specs_misspellings():
    assert ocppj.ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION == "OccurenceConstraintViolation"
    assert ocppj.ErrorCode.FORMATION_VIOLATION == "FormationViolation"
    assert {c.value for c in ocppj.ErrorCode} == {
        "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError", "FormationViolation",
        "PropertyConstraintViolation", "OccurenceConstraintViolation", "TypeConstraintViolation", "GenericError"}
