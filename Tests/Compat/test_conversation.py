"""The conversation API (ConverseAlpha1/ConverseAlpha2 and the HTTP routes) through the SDK.

`conversation.echo` as the SDK's examples and integration tests use it; `conversation.openai`
pointed at a fake OpenAI chat completions server run by this module (a tool call round trip and
the response cache); `conversation.ollama` with the SDK's own resource, which must load without an
Ollama server."""

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest

from conftest import http, port_open
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc.conversation import (
    ConversationInput,
    ConversationInputAlpha2,
    ConversationMessage,
    ConversationMessageContent,
    ConversationMessageOfAssistant,
    ConversationToolCalls,
    ConversationToolCallsOfFunction,
    ConversationTools,
    ConversationToolsFunction,
    create_assistant_message,
    create_system_message,
    create_tool_message,
    create_user_message,
)

WEATHER_TOOL = ConversationTools(function=ConversationToolsFunction(
    name="get_weather",
    description="Current weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
))


# --------------------------------------------------------------------------------------------
# A fake OpenAI chat completions server
# --------------------------------------------------------------------------------------------

class FakeOpenAI:
    """Speaks POST /v1/chat/completions as OpenAI does; records every request.

    The answer depends on the request: a last message from the tool yields a final text answer
    that quotes the tool result; a request offering tools yields a call of the first tool; a user
    text `fail` yields a 500 error; anything else echoes the last user text with a counter."""

    def __init__(self):
        self.requests = []
        self.count = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                with fake.lock:
                    fake.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                    fake.count += 1
                    n = fake.count
                status, answer = fake.answer(self.path, body, n)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path, body, n):
        if path != "/v1/chat/completions":
            return 404, {"error": {"message": f"no route {path}", "type": "invalid_request_error"}}
        messages = body.get("messages", [])
        last = messages[-1] if messages else {}
        usage = {"prompt_tokens": 20, "completion_tokens": 7, "total_tokens": 27,
                 "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}
        message = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if last.get("role") == "tool":
            message["content"] = f"The weather: {last.get('content')} ({last.get('tool_call_id')})"
        elif body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            message["tool_calls"] = [{"id": "call_abc123", "type": "function",
                                      "function": {"name": name, "arguments": json.dumps({"city": "Paris"})}}]
            finish = "tool_calls"
        elif last.get("content") == "fail":
            return 500, {"error": {"message": "the model is overloaded", "type": "server_error"}}
        else:
            message["content"] = f"answer {n}: {last.get('content')}"
        return 200, {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1700000000,
                     "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_test",
                     "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
                     "usage": usage}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fake_openai():
    server = FakeOpenAI()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sidecar(module_launcher, fake_openai):
    endpoint = f"http://127.0.0.1:{fake_openai.port}/v1"
    resources = module_launcher.resources("conversation-resources", {
        # examples/conversation/config/conversation-echo.yaml and tests/integration/resources/*.yaml
        "conversation-echo.yaml": """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: echo
            spec:
              type: conversation.echo
              version: v1
            """,
        "conversation_ollama.yaml": """
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: ollama
            spec:
              type: conversation.ollama
              version: v1
              metadata:
                - name: model
                  value: llama3.2:latest
            """,
        "openai.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: openai
            spec:
              type: conversation.openai
              version: v1
              metadata:
              - name: key
                value: sk-test-key
              - name: model
                value: gpt-4o-mini
              - name: endpoint
                value: "{endpoint}"
            """,
        "openai-cached.yaml": f"""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: openai-cached
            spec:
              type: conversation.openai
              version: v1
              metadata:
              - name: key
                value: sk-test-key
              - name: model
                value: gpt-4o-mini
              - name: endpoint
                value: "{endpoint}"
              - name: cacheTTL
                value: 10m
            """,
    })
    return module_launcher.sidecar("conversation-app", resources=[resources])


@pytest.fixture
def client(sidecar, dapr_client):
    return dapr_client(sidecar)


# --------------------------------------------------------------------------------------------
# examples/conversation
# --------------------------------------------------------------------------------------------

def test_example_conversation_alpha1(client):
    inputs = [
        ConversationInput(content="What's Dapr?", role="user", scrub_pii=True),
        ConversationInput(content="Give a brief overview.", role="user", scrub_pii=True),
    ]
    metadata = {"model": "foo", "key": "authKey", "cacheTTL": "10m"}
    response = client.converse_alpha1(name="echo", inputs=inputs, temperature=0.7, context_id="chat-123", metadata=metadata)
    assert [output.result for output in response.outputs] == ["What's Dapr?\nGive a brief overview."]
    assert response.context_id == "chat-123"


def test_example_conversation_alpha2(client):
    inputs = [
        ConversationInputAlpha2(messages=[create_user_message("What's Dapr?")], scrub_pii=True),
        ConversationInputAlpha2(messages=[create_user_message("Give a brief overview.")], scrub_pii=True),
    ]
    metadata = {"model": "foo", "key": "authKey", "cacheTTL": "10m"}
    response = client.converse_alpha2(name="echo", inputs=inputs, temperature=0.7, context_id="chat-123", metadata=metadata)
    assert response.context_id == "chat-123"
    assert len(response.outputs) == 1
    choice = response.outputs[0].choices[0]
    assert choice.message.content == "What's Dapr?\nGive a brief overview."
    assert choice.finish_reason == "stop"
    assert response.outputs[0].usage.total_tokens == 12  # six words, counted twice


# --------------------------------------------------------------------------------------------
# tests/integration/test_conversation*.py
# --------------------------------------------------------------------------------------------

def test_converse_alpha1_echoes_input(client):
    response = client.converse_alpha1(name="echo", inputs=[ConversationInput(content="sync hello", role="user")])
    assert response.outputs[0].result == "sync hello"


def test_converse_alpha1_with_multiple_inputs(client):
    response = client.converse_alpha1(
        name="echo",
        inputs=[ConversationInput(content="one", role="user"), ConversationInput(content="two", role="user")],
    )
    assert [out.result for out in response.outputs] == ["one\ntwo"]


def test_converse_alpha1_with_temperature(client):
    response = client.converse_alpha1(name="echo", inputs=[ConversationInput(content="warm", role="user")], temperature=0.7)
    assert response.outputs[0].result == "warm"


def test_converse_alpha2_echoes_user_message(client):
    response = client.converse_alpha2(name="echo", inputs=[ConversationInputAlpha2(messages=[create_user_message("sync world")])])
    assert response.outputs[0].choices[0].message.content == "sync world"


def test_converse_alpha2_with_mixed_messages(client):
    response = client.converse_alpha2(
        name="echo",
        inputs=[ConversationInputAlpha2(messages=[
            create_system_message("be brief"),
            create_user_message("hi"),
            create_assistant_message("hello"),
        ])],
    )
    choice = response.outputs[0].choices[0]
    assert choice.message.content == "be brief\nhi\nhello"
    assert choice.finish_reason == "stop"


def test_async_client(sidecar, use_sidecar):
    from dapr.aio.clients import DaprClient as AsyncDaprClient

    use_sidecar(sidecar)

    async def run():
        async with AsyncDaprClient(address=sidecar.grpc_address) as d:
            one = await d.converse_alpha1(name="echo", inputs=[ConversationInput(content="async hello", role="user")])
            two = await d.converse_alpha2(name="echo", inputs=[ConversationInputAlpha2(messages=[create_user_message("async world")])])
        return one, two

    one, two = asyncio.run(run())
    assert one.outputs[0].result == "async hello"
    assert two.outputs[0].choices[0].message.content == "async world"


# --------------------------------------------------------------------------------------------
# Tools, PII, errors on echo
# --------------------------------------------------------------------------------------------

def test_echo_calls_offered_tools_and_reads_tool_results(client):
    response = client.converse_alpha2(
        name="echo",
        inputs=[ConversationInputAlpha2(messages=[create_user_message("weather?")])],
        tools=[WEATHER_TOOL],
    )
    choice = response.outputs[0].choices[0]
    assert choice.finish_reason == "tool_calls"
    assert [(c.id, c.function.name, c.function.arguments) for c in choice.message.tool_calls] == [("0", "get_weather", "city")]

    response = client.converse_alpha2(
        name="echo",
        inputs=[ConversationInputAlpha2(messages=[
            create_user_message("weather?"),
            *response.to_assistant_messages(),
            create_tool_message(tool_id="0", name="get_weather", content="sunny"),
        ])],
    )
    choice = response.outputs[0].choices[0]
    assert choice.finish_reason == "tool_calls"  # the replayed call is echoed back
    # The question, the echoed answer replayed as the assistant's message, then the tool result.
    assert choice.message.content == "weather?\nweather?\nTool Response for tool ID '0' with name 'get_weather': sunny"


def test_scrub_pii(client):
    response = client.converse_alpha1(
        name="echo",
        inputs=[ConversationInput(content="mail test@test.com from 10.8.9.1", role="user", scrub_pii=True)],
    )
    assert response.outputs[0].result == "mail <EMAIL_ADDRESS> from <IP>"
    response = client.converse_alpha2(
        name="echo",
        inputs=[ConversationInputAlpha2(messages=[create_user_message("call +2222222222")])],
        scrub_pii=True,
    )
    assert response.outputs[0].choices[0].message.content == "call <PHONE_NUMBER>"


def grpc_error(call):
    with pytest.raises(DaprGrpcError) as caught:
        call()
    return caught.value.code(), caught.value.details()


def test_errors_have_daprds_codes(client):
    assert grpc_error(lambda: client.converse_alpha2(name="nope", inputs=[ConversationInputAlpha2(messages=[create_user_message("x")])])) == (
        grpc.StatusCode.INVALID_ARGUMENT, "failed finding conversation component nope")
    assert grpc_error(lambda: client.converse_alpha1(name="echo", inputs=[])) == (
        grpc.StatusCode.INVALID_ARGUMENT, "failed conversing with component echo: missing inputs in request")
    assert grpc_error(lambda: client.converse_alpha2(
        name="echo", inputs=[ConversationInputAlpha2(messages=[create_user_message("x")])], tool_choice="required")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "failed conversing with component echo: invalid params: tool choice must be 'auto', 'none', 'required', "
        "or a specific tool name matching the tools available to be used")
    assert grpc_error(lambda: client.converse_alpha2(
        name="echo", inputs=[ConversationInputAlpha2(messages=[ConversationMessage()])])) == (
        grpc.StatusCode.INVALID_ARGUMENT, "failed conversing with component echo: invalid params: message type cannot be nil")
    broken_call = ConversationMessage(of_assistant=ConversationMessageOfAssistant(
        content=[ConversationMessageContent(text="a")], tool_calls=[ConversationToolCalls(id="call_1")]))
    assert grpc_error(lambda: client.converse_alpha2(name="echo", inputs=[ConversationInputAlpha2(messages=[broken_call])])) == (
        grpc.StatusCode.INVALID_ARGUMENT, "failed conversing with component echo: invalid params: tool types cannot be nil")


# --------------------------------------------------------------------------------------------
# conversation.openai against the fake server
# --------------------------------------------------------------------------------------------

def test_openai_tool_call_round_trip(client, fake_openai):
    before = len(fake_openai.requests)
    question = ConversationInputAlpha2(messages=[
        create_system_message("You answer weather questions."),
        create_user_message("What is the weather in Paris?"),
    ])
    first = client.converse_alpha2(name="openai", inputs=[question], tools=[WEATHER_TOOL], temperature=0.3, metadata={"team": "a"})
    output = first.outputs[0]
    assert output.model == "gpt-4o-mini"
    choice = output.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == ""
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in choice.message.tool_calls] == [
        ("call_abc123", "get_weather", {"city": "Paris"})]
    assert (output.usage.prompt_tokens, output.usage.completion_tokens, output.usage.total_tokens) == (20, 7, 27)
    assert output.usage.prompt_tokens_details.cached_tokens == 4

    sent = fake_openai.requests[before]
    assert sent["headers"]["authorization"] == "Bearer sk-test-key"
    body = sent["body"]
    assert body["model"] == "gpt-4o-mini"
    assert body["temperature"] == 0.3
    assert body["metadata"] == {"team": "a"}
    assert body["tool_choice"] == "auto"
    assert body["messages"] == [
        {"role": "system", "content": "You answer weather questions."},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]

    # Run the tool and send its result back with the history.
    call = choice.message.tool_calls[0]
    follow_up = ConversationInputAlpha2(messages=[
        *question.messages,
        *first.to_assistant_messages(),
        create_tool_message(tool_id=call.id, name=call.function.name, content="sunny, 21C"),
    ])
    second = client.converse_alpha2(name="openai", inputs=[follow_up], tools=[WEATHER_TOOL])
    final = second.outputs[0].choices[0]
    assert final.finish_reason == "stop"
    assert final.message.content == "The weather: sunny, 21C (call_abc123)"
    assert final.message.tool_calls == []
    messages = fake_openai.requests[before + 1]["body"]["messages"]
    assert messages[2] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]}
    assert messages[3] == {"role": "tool", "content": "sunny, 21C", "tool_call_id": "call_abc123"}


def test_openai_alpha1(client, fake_openai):
    response = client.converse_alpha1(name="openai", inputs=[ConversationInput(content="hello there", role="user")])
    assert response.outputs[0].result.endswith(": hello there")
    assert fake_openai.requests[-1]["body"]["messages"] == [{"role": "user", "content": "hello there"}]


def test_openai_cache_ttl_answers_repeats_from_the_cache(client, fake_openai):
    inputs = [ConversationInputAlpha2(messages=[create_user_message("cache me")])]
    before = len(fake_openai.requests)
    first = client.converse_alpha2(name="openai-cached", inputs=inputs)
    second = client.converse_alpha2(name="openai-cached", inputs=inputs)
    assert first.outputs[0].choices[0].message.content == second.outputs[0].choices[0].message.content
    assert len(fake_openai.requests) == before + 1
    client.converse_alpha2(name="openai-cached", inputs=inputs, temperature=0.9)
    assert len(fake_openai.requests) == before + 2
    # Without cacheTTL every call reaches the model.
    client.converse_alpha2(name="openai", inputs=inputs)
    client.converse_alpha2(name="openai", inputs=inputs)
    assert len(fake_openai.requests) == before + 4


def test_openai_provider_errors(client):
    code, details = grpc_error(lambda: client.converse_alpha2(name="openai", inputs=[ConversationInputAlpha2(messages=[create_user_message("fail")])]))
    assert code == grpc.StatusCode.INTERNAL
    assert details == "failed conversing with component openai: API returned unexpected status code: 500: the model is overloaded"


# --------------------------------------------------------------------------------------------
# conversation.ollama without a server
# --------------------------------------------------------------------------------------------

def test_ollama_loads_without_a_server(client, sidecar):
    components = {c["name"]: c for c in sidecar.metadata()["components"]}
    assert components["ollama"]["type"] == "conversation.ollama"
    assert components["echo"]["type"] == "conversation.echo"
    assert components["openai"]["type"] == "conversation.openai"
    if port_open(11434):
        pytest.skip("an Ollama server is listening on 11434: the failing call cannot be checked")
    code, details = grpc_error(lambda: client.converse_alpha1(name="ollama", inputs=[ConversationInput(content="hi", role="user")]))
    assert code == grpc.StatusCode.INTERNAL
    assert details.startswith('failed conversing with component ollama: Post "http://localhost:11434/v1/chat/completions": ')
    assert "connection refused" in details


# --------------------------------------------------------------------------------------------
# HTTP routes
# --------------------------------------------------------------------------------------------

def post(sidecar, path, body):
    status, headers, data = http("POST", sidecar.http_url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    return status, json.loads(data) if data else None


def test_http_alpha1(sidecar):
    status, body = post(sidecar, "/v1.0-alpha1/conversation/echo/converse",
                        {"inputs": [{"content": "one", "role": "user"}, {"content": "two"}], "contextID": "c-1"})
    assert status == 200
    assert body == {"contextID": "c-1", "outputs": [{"result": "one\ntwo"}]}


def test_http_alpha2(sidecar):
    status, body = post(sidecar, "/v1.0-alpha2/conversation/echo/converse", {
        "contextId": "c-2",
        "inputs": [{"messages": [{"ofUser": {"content": [{"text": "well hello there"}]}}]}],
        "tools": [{"function": {"name": "test_function", "parameters": {"type": "object", "properties": {"param1": {"type": "string"}}}}}],
    })
    assert status == 200
    assert body == {"contextId": "c-2", "outputs": [{
        "choices": [{"finishReason": "tool_calls", "message": {
            "content": "well hello there",
            "toolCalls": [{"id": "0", "function": {"name": "test_function", "arguments": "param1"}}]}}],
        "usage": {"completionTokens": "3", "promptTokens": "3", "totalTokens": "6"}}]}


def test_http_alpha2_openai_tool_call(sidecar):
    status, body = post(sidecar, "/v1.0-alpha2/conversation/openai/converse", {
        "inputs": [{"messages": [{"ofUser": {"content": [{"text": "weather in Paris?"}]}}]}],
        "tools": [{"function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "toolChoice": "get_weather",
    })
    assert status == 200
    output = body["outputs"][0]
    assert output["model"] == "gpt-4o-mini"
    assert output["choices"][0]["finishReason"] == "tool_calls"
    assert output["choices"][0]["message"]["toolCalls"] == [
        {"id": "call_abc123", "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]
    assert output["usage"] == {"completionTokens": "7", "promptTokens": "20", "totalTokens": "27", "promptTokensDetails": {"cachedTokens": "4"}}


def test_http_errors(sidecar):
    assert post(sidecar, "/v1.0-alpha2/conversation/nope/converse", {"inputs": []}) == (
        400, {"errorCode": "ERR_CONVERSATION_NOT_FOUND", "message": "failed finding conversation component nope"})
    assert post(sidecar, "/v1.0-alpha1/conversation/echo/converse", {}) == (
        400, {"errorCode": "ERR_CONVERSATION_MISSING_INPUTS", "message": "failed conversing with component echo: missing inputs in request"})
    status, body = post(sidecar, "/v1.0-alpha2/conversation/openai/converse",
                        {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "fail"}]}}]}]})
    assert status == 500
    assert body == {"errorCode": "ERR_CONVERSATION_INVOKE",
                    "message": "failed conversing with component openai: API returned unexpected status code: 500: the model is overloaded"}
