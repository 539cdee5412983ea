"""The ingress's translation of chat-request controls into SamplingParams fields, and its 400s."""

import json

import pytest

from deployments.engine.sampling import SamplingParams
from deployments.ingress.errors import APIError, error_body
from deployments.ingress.chat.controls import guided_spec, request_controls
from deployments.ingress.chat.schema import ChatCompletionRequest

VOCAB = 49157
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def req(**fields) -> ChatCompletionRequest:
    return ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "hi"}], **fields)


def controls(**fields) -> SamplingParams:
    return SamplingParams(**request_controls(req(**fields), VOCAB))


def bad(**fields) -> APIError:
    with pytest.raises(APIError) as caught:
        request_controls(req(**fields), VOCAB)
    assert caught.value.status == 400
    return caught.value


def test_penalties_bias_and_min_tokens_pass_through():
    params = controls(presence_penalty=0.5, frequency_penalty=-1, repetition_penalty=1.3, min_tokens=4,
                      logit_bias={"42": -100, "7": 2.5})
    assert (params.presence_penalty, params.frequency_penalty, params.repetition_penalty) == (0.5, -1, 1.3)
    assert params.min_tokens == 4 and params.logit_bias == {42: -100.0, 7: 2.5}
    assert controls().processes_logits is False


@pytest.mark.parametrize("fields, kind", [
    ({"response_format": {"type": "json_object"}}, "json_object"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA, "strict": True}}},
     "json_schema"),
    ({"guided_json": SCHEMA}, "json_schema"),
    ({"guided_json": json.dumps(SCHEMA)}, "json_schema"),
    ({"guided_regex": "[0-9]+"}, "regex"),
    ({"guided_choice": ["yes", "no"]}, "choice"),
    ({"guided_grammar": 'start: "a"+'}, "grammar"),
    ({"structured_outputs": {"choice": ["yes", "no"]}}, "choice"),
    ({"structured_outputs": {"json_object": True}}, "json_object"),
    ({"response_format": {"type": "text"}}, None),
])
def test_every_structured_output_field_maps_to_one_guided_spec(fields, kind):
    spec = controls(**fields).guided
    assert (spec.kind if spec else None) == kind


def test_the_same_schema_written_differently_is_one_cache_entry():
    a = guided_spec(req(guided_json={"type": "object", "required": ["a"]}))
    b = guided_spec(req(guided_json='{"required": ["a"], "type": "object"}'))
    assert a == b


@pytest.mark.parametrize("fields, code, words", [
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"if": {}, "then": {}}}}},
     "unsupported_schema", '"if"'),
    ({"guided_regex": "[a-z"}, "unsupported_schema", "unclosed character class"),
    ({"response_format": {"type": "xml"}}, "invalid_request", "'xml'"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}, "invalid_request", "schema"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}}}, "invalid_request", "name"),
    ({"guided_regex": "a", "guided_choice": ["a"]}, "invalid_request", "one structured-output constraint"),
    ({"structured_outputs": {"structural_tag": "x"}}, "invalid_request", "structural_tag"),
    ({"guided_choice": []}, "invalid_request", "choice"),
    ({"logit_bias": {"abc": 1}}, "invalid_request", "'abc'"),
    ({"logit_bias": {str(VOCAB): 1}}, "invalid_request", "vocabulary"),
    ({"logit_bias": {str(i): 1 for i in range(301)}}, "invalid_request", "at most 300"),
    ({"guided_regex": "a", "ignore_eos": True}, "invalid_request", "ignore_eos"),
])
def test_bad_controls_are_400_naming_the_problem(fields, code, words):
    error = bad(**fields)
    assert error.code == code and words in error.message


def test_the_error_json_names_the_param():
    body = error_body(bad(logit_bias={"abc": 1}))["error"]
    assert body["param"] == "logit_bias" and body["type"] == "invalid_request_error"


@pytest.mark.parametrize("field, value", [("presence_penalty", 2.5), ("frequency_penalty", -2.5),
                                          ("repetition_penalty", 0), ("min_tokens", -1),
                                          ("logit_bias", {"1": 100.5})])  # OpenAI's range [-100, 100]
def test_out_of_range_fields_fail_validation(field, value):
    with pytest.raises(ValueError, match=field):
        req(**{field: value})


def test_tools_are_no_longer_rejected():  # served by deployments/ingress/tools (issue 24)
    assert req(tools=[{"type": "function", "function": {"name": "f"}}]).unsupported() is None


def test_stop_token_ids_pass_through_and_are_checked_against_the_vocabulary():
    assert controls(stop_token_ids=[2, 7]).stop_token_ids == (2, 7)
    assert controls().stop_token_ids == ()
    error = bad(stop_token_ids=[5, VOCAB])
    assert error.param == "stop_token_ids[1]" and str(VOCAB) in error.message
    with pytest.raises(ValueError):  # the schema bounds the list (limits before any work)
        req(stop_token_ids=list(range(65)))
