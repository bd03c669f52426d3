"""Upstream objects a request names by id (the ids an answer relays:
``gateway.proxy.relayed_ids``).

Every customer reaches the upstream with the gateway's one credential, so to
the upstream every stored item and container belongs to one account: a
customer who learned another's id could have the upstream read that
customer's data into its own answer. The gateway binds each id it relays to
the customer it relays it to (``gateway.proxy.reference_owners``) and refuses
a request naming an id bound to anyone else, or to nobody (404, as an unknown
id; recorded, never forwarded).

What a request names (``request_references``):

- Responses ``input`` items: an ``item_reference`` (``{"type":
  "item_reference", "id": …}``) and any item sent with an ``id`` (a replayed
  output item: the upstream resolves a stored item by its id, a reasoning
  item's hidden content included);
- a container: a ``code_interpreter`` tool's ``container`` given as an id, a
  ``container_reference`` (a shell tool's or shell call's ``environment``),
  an input item's ``container_id`` (a replayed ``code_interpreter_call``) and
  the ``container_id`` a replayed message's annotation cites, Anthropic's
  top-level ``container`` (an id, or an object with one). Checked as any
  other reference: the upstream keeps an input item as sent, and its input
  items list shows it again (``gateway.proxy.relayed_ids``);
- a custom skill: one of Anthropic's ``container.skills`` of type ``custom``
  (``type: "anthropic"`` skills are Anthropic's own, and pass), or a Responses
  shell ``environment``'s ``skills`` of type ``skill_reference`` (``inline``
  skills carry their own files, and pass). Found beside the container, so a
  plain request pays nothing more;
- a Responses stored prompt (``prompt.id``);
- a file (``file_id``, anywhere but inside a tool's schema or a tool call's
  input: Anthropic ``document``/``image`` sources of type ``file``,
  ``container_upload`` blocks, OpenAI ``input_file``/``input_image`` parts,
  chat ``file`` parts; a code interpreter container's ``file_ids``), a
  vector store (``file_search``'s ``vector_store_ids``) and a chat assistant
  turn's ``audio.id`` (a previous audio answer). These are found by the body
  walk that collects the prompt text (``gateway.proxy.body``), by the key test
  it makes on every key anyway.

Files, vector stores and skills the operator made for everyone are named by
anyone (``GATEWAY_SHARED_FILE_IDS``, ``GATEWAY_SHARED_VECTOR_STORE_IDS``,
``GATEWAY_SHARED_SKILL_IDS``). The gateway serves no ``/v1/files``,
``/v1/vector_stores`` or ``/v1/skills``, so customers can make none of them:
any other vector store or custom skill (the operator's, perhaps made for one
customer) is refused, and the only other files a customer can hold are ones
relayed to it. A stored prompt is made in the provider's dashboard, never
through the gateway: named only if listed in ``GATEWAY_SHARED_PROMPT_IDS``,
and unchecked while that is unset (``CHECKED_WHEN_LISTED``).

A ``conversation`` (Conversations API) is refused 400 instead: conversations
are made through ``/v1/conversations``, which the gateway does not relay, so
it can never see one made, nor bind it to anyone.

A plain chat or messages request pays a key lookup (``"container" in body``)
beside the walk's key tests; a Responses body, a ``prompt`` lookup and one
pass over its ``input`` items and ``tools``.
"""

from __future__ import annotations

from typing import Any

from gateway.proxy.errors import ProxyError

ITEM = "item"
CONTAINER = "container"
FILE = "file"
AUDIO = "audio"
VECTOR_STORE = "vector_store"
SKILL = "skill"
PROMPT = "prompt"
CITED_FILE = "cited_file"
"""A file a ``file_citation`` cites: found by file search in a vector store
the operator shares with every customer, so bound as a ``FILE`` for
everyone (``gateway.proxy.reference_owners.EVERYONE``), never to its first
reader alone. Never the kind of a request's reference."""
MAX_ID_CHARS = 128

Reference = tuple[str, str]
"""(kind, id): kind ``ITEM``, ``CONTAINER``, ``FILE``, ``AUDIO``, ``VECTOR_STORE``,
``SKILL`` or ``PROMPT`` (and ``CITED_FILE`` in an answer)."""

NEVER_BOUND = frozenset({VECTOR_STORE, SKILL, PROMPT})
"""Kinds no customer can make through the gateway: named only when shared."""
CHECKED_WHEN_LISTED = frozenset({PROMPT})
"""Kinds refused only when the operator lists the shared ones: stored prompts
are made in the provider's dashboard, never through an API the gateway
relays, and were forwarded unchecked before ``GATEWAY_SHARED_PROMPT_IDS``."""
_OWN_SKILL_TYPES = frozenset({"anthropic", "inline"})
"""Skills that name no upload of the gateway's account: Anthropic's own
(``pptx``, ``xlsx``...), and Responses ``inline`` skills sent whole."""
_UPLOADED_SKILL_TYPES = frozenset({"custom", "skill_reference"})
"""Skills that always name an upload by ``skill_id`` (required)."""

ID_KEYS = {"file_id": FILE, "file_ids": FILE, "vector_store_ids": VECTOR_STORE}
"""Keys whose value names files or vector stores by id, wherever they are."""

_RESPONSES = "/v1/responses"
_MESSAGES = ("/v1/messages", "/v1/messages/count_tokens")


def _id(value: object, param: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID_CHARS:
        raise ProxyError(
            400, f"'{param}' must be an id of 1 to {MAX_ID_CHARS} characters", param=param
        )
    return value


def _environment(holder: dict[str, Any], param: str, found: list[Reference]) -> None:
    environment = holder.get("environment")
    if not isinstance(environment, dict):
        return
    if environment.get("type") == "container_reference":
        found.append((CONTAINER, _id(environment.get("container_id"), f"{param}.container_id")))
    if "skills" in environment:
        _skills(environment["skills"], f"{param}.environment.skills", found)


def _skills(skills: object, param: str, found: list[Reference]) -> None:
    """The uploaded skills a container loads: ``custom`` and ``skill_reference``
    ones, and any other naming a ``skill_id`` but the provider's own and inline
    ones (a local shell's skills name paths on the caller's machine)."""
    if skills is None:
        return
    if not isinstance(skills, list):
        raise ProxyError(400, f"'{param}' must be an array", param=param)
    for index, skill in enumerate(skills):
        if not isinstance(skill, dict):
            continue
        kind = skill.get("type")
        if kind in _UPLOADED_SKILL_TYPES or ("skill_id" in skill and kind not in _OWN_SKILL_TYPES):
            found.append((SKILL, _id(skill.get("skill_id"), f"{param}[{index}].skill_id")))


def _cited_containers(content: object, param: str, found: list[Reference]) -> None:
    """The containers a replayed output message's annotations cite
    (``container_file_citation``; their files are found by the body walk)."""
    for index, part in enumerate(content if isinstance(content, list) else ()):
        annotations = part.get("annotations") if isinstance(part, dict) else None
        for number, annotation in enumerate(annotations if isinstance(annotations, list) else ()):
            if isinstance(annotation, dict) and annotation.get("container_id") is not None:
                where = f"{param}.content[{index}].annotations[{number}].container_id"
                found.append((CONTAINER, _id(annotation["container_id"], where)))


def named_ids(key: str, value: object, found: list[Reference]) -> None:
    """The ids a ``ID_KEYS`` member names (one id, or a list of them)."""
    if value is None:
        return
    kind = ID_KEYS[key]
    for one in value if isinstance(value, list) else (value,):
        found.append((kind, _id(one, key)))


def named_audio(audio: object, found: list[Reference]) -> None:
    """A chat assistant turn's ``audio`` (``{"id": …}``): a previous audio answer."""
    if isinstance(audio, dict) and audio.get("id") is not None:
        found.append((AUDIO, _id(audio["id"], "audio.id")))


def request_references(body: dict[str, Any], endpoint: str) -> tuple[Reference, ...]:
    """The stored items and containers ``body`` names; 400 for a field naming
    what the gateway can never bind (``conversation``)."""
    if endpoint == _RESPONSES:
        return _responses_references(body)
    if "container" in body and endpoint in _MESSAGES:
        container = body["container"]
        found: list[Reference] = []
        if isinstance(container, dict):
            if "skills" in container:
                _skills(container["skills"], "container.skills", found)
            container = container.get("id")  # None: a new container
        if container is not None:
            found.insert(0, (CONTAINER, _id(container, "container")))
        return tuple(found)
    return ()


def _responses_references(body: dict[str, Any]) -> tuple[Reference, ...]:
    if body.get("conversation") is not None:
        raise ProxyError(
            400,
            "'conversation' is not accepted through this gateway: conversations are created "
            "with /v1/conversations, which it does not relay, so it cannot tell whose a "
            "conversation is; send 'previous_response_id' or the items themselves",
            param="conversation",
        )
    found: list[Reference] = []
    prompt = body.get("prompt")
    if isinstance(prompt, dict) and prompt.get("id") is not None:
        found.append((PROMPT, _id(prompt["id"], "prompt.id")))
    items = body.get("input")
    if isinstance(items, list):
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            param = f"input[{index}]"
            if item.get("type") == "item_reference" or item.get("id") is not None:
                found.append((ITEM, _id(item.get("id"), f"{param}.id")))
            if item.get("container_id") is not None:  # a replayed code interpreter call
                found.append((CONTAINER, _id(item["container_id"], f"{param}.container_id")))
            _environment(item, param, found)
            if item.get("type") == "message":
                _cited_containers(item.get("content"), param, found)
    tools = body.get("tools")
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict):
                continue
            param = f"tools[{index}]"
            container = tool.get("container")
            if tool.get("type") == "code_interpreter" and not isinstance(container, dict):
                found.append((CONTAINER, _id(container, f"{param}.container")))
            _environment(tool, param, found)
    return tuple(found)


def stored_prompt(body: dict[str, Any]) -> tuple[str, str | None] | None:
    """A Responses body's stored prompt (``prompt.id``, ``prompt.version``), for
    the decision record: which prompt the operator's dashboard ran."""
    prompt = body.get("prompt")
    if not isinstance(prompt, dict) or not isinstance(prompt.get("id"), str):
        return None
    version = prompt.get("version")
    return prompt["id"][:MAX_ID_CHARS], version[:64] if isinstance(version, str) else None
