"""The run's state machines parsed in a forked process (stepspot.local.parse_ahead): the programs it sends
are moto's, and nothing is lost when it fails, is slow or sends what does not pickle: the engine parses
those definitions itself, and an invalid one fails there with moto's own error."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from stepspot.local import moto_patches, parse_ahead
from stepspot.local.engine import MOTO_CONFIG
from stepspot.local.resources import definition_text

PASS_MACHINE = {"StartAt": "Hello", "States": {"Hello": {"Type": "Pass", "Result": {"said": "hi"}, "End": True}}}
ROLE = "arn:aws:iam::123456789012:role/sfn"


def _moto_parse(definition: str) -> Any:
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    return AmazonStateLanguageParser.parse(definition)


def _gone(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


def test_the_child_sends_the_programs_moto_parses():
    text = definition_text(PASS_MACHINE)
    parse_ahead.start([text, text], _moto_parse)
    pid = parse_ahead._children[0][0]

    programs = parse_ahead.take()

    assert list(programs) == [text]
    here = _moto_parse(text)[0]
    assert type(programs[text]) is type(here)
    assert list(programs[text].states.states) == list(here.states.states) == ["Hello"]
    assert _gone(pid) and parse_ahead.take() == {}  # taken once, the child reaped


def test_a_state_machine_parsed_ahead_runs_as_one_parsed_in_the_engine():
    text = definition_text(PASS_MACHINE)
    moto_patches._parsed.pop(text, None)
    with mock_aws(config=MOTO_CONFIG), moto_patches.patched():  # type: ignore[arg-type]
        moto_patches.parse_ahead_of([text])
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(name="ahead", definition=text, roleArn=ROLE)["stateMachineArn"]
        assert moto_patches._parsed[text][1] is None  # the program came from the child (its tree stays there)
        execution = sfn.start_execution(stateMachineArn=arn, input="{}")["executionArn"]
        deadline = time.monotonic() + 30
        while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"said": "hi"}


def test_an_invalid_definition_still_fails_with_moto_s_error():
    bad = definition_text({"StartAt": "Missing", "States": {"Oops": {"Type": "Nonsense", "End": True}}})
    moto_patches._parsed.pop(bad, None)
    with mock_aws(config=MOTO_CONFIG), moto_patches.patched():  # type: ignore[arg-type]
        moto_patches.parse_ahead_of([bad])
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        with pytest.raises(ClientError, match=r"ASLParserException .* at \"Nonsense\""):
            sfn.create_state_machine(name="bad", definition=bad, roleArn=ROLE)  # moto's answer, as without


def test_a_slow_child_is_ended_and_its_definitions_are_parsed_in_the_engine(monkeypatch):
    monkeypatch.setattr(parse_ahead, "WAIT_SECONDS", 0.2)

    def slow(definition: str) -> Any:
        time.sleep(30)
        return _moto_parse(definition)

    parse_ahead.start([definition_text(PASS_MACHINE)], slow)
    pid = parse_ahead._children[0][0]
    started = time.monotonic()

    assert parse_ahead.take() == {}
    assert time.monotonic() - started < 10 and _gone(pid)


def test_programs_that_do_not_pickle_are_left_to_the_engine():
    parse_ahead.start([definition_text(PASS_MACHINE)], lambda definition: (lambda: definition, None))

    assert parse_ahead.take() == {}


def test_a_child_nobody_took_ends_with_the_run():
    parse_ahead.start([definition_text(PASS_MACHINE)], _moto_parse)
    pid = parse_ahead._children[0][0]

    parse_ahead.discard()

    assert _gone(pid) and parse_ahead.take() == {}
