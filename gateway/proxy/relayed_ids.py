"""The ids an answer relays, bound to the caller it is relayed to
(``gateway.proxy.reference_owners``; what a request names, and why:
``gateway.proxy.references``).

What binds (``answer_references``): the ids of a Responses answer's output
items (a create, a retrieve, a cancel), of a stored response's input items
(``GET …/input_items``: their ids only, ``_input_item_ids``), the containers
its output's tool calls ran in (``container_id``), Anthropic's
``container.id`` (a message, or a stream's ``message_delta``), the files
Anthropic code execution wrote (``*code_execution_tool_result`` blocks: a
message's ``content``, a stream's ``content_block_start``), a chat
answer's ``audio.id`` (``message``, or a stream chunk's ``delta``), and the
files a Responses answer's text cites (``annotations``: a
``container_file_citation``'s file and container, a ``file_path``'s file; a
``file_citation``'s file, found by file search in a shared vector store, is
bound for every customer: ``CITED_FILE``). A Responses stream's items and
citations are seen as they are added (``response.output_item.added``,
``response.output_text.annotation.added``), so a stream that never
completes binds them too.
"""

from __future__ import annotations

from typing import Any

from gateway.proxy.references import (
    AUDIO,
    CITED_FILE,
    CONTAINER,
    FILE,
    ITEM,
    MAX_ID_CHARS,
    Reference,
)


def answer_references(doc: object) -> tuple[Reference, ...]:
    """The item and container ids a parsed answer (or stream event) relays."""
    if not isinstance(doc, dict):
        return ()
    found: list[Reference] = []
    response = doc.get("response")  # a Responses stream's response.completed
    for holder in (doc, response if isinstance(response, dict) else None):
        if holder is None:
            continue
        items = holder.get("output")  # a response's output: what it cites too
        if isinstance(items, list):
            _items(items, found)
        items = holder.get("data")  # an input items page: the caller's own input
        if isinstance(items, list):
            _input_item_ids(items, found)
    item = doc.get("item")  # a Responses stream's response.output_item.added (or done)
    if isinstance(item, dict):
        _items([item], found)
    annotation = doc.get("annotation")  # response.output_text.annotation.added
    if isinstance(annotation, dict):
        _cited(annotation, found)
    for holder in (doc, doc.get("delta")):  # a message; a stream's message_delta
        container = holder.get("container") if isinstance(holder, dict) else None
        if isinstance(container, dict):
            _keep(CONTAINER, container.get("id"), found)
    blocks = doc.get("content")  # a message; a stream's content_block_start
    block = doc.get("content_block")
    _written_files(blocks if isinstance(blocks, list) else [block], found)
    choices = doc.get("choices")  # a chat completion, or a chunk of one
    if isinstance(choices, list):
        for choice in choices:
            if isinstance(choice, dict):
                for key in ("message", "delta"):
                    said = choice.get(key)
                    if isinstance(said, dict) and isinstance(said.get("audio"), dict):
                        _keep(AUDIO, said["audio"].get("id"), found)
    return tuple(found)


def _written_files(blocks: list[Any], found: list[Reference]) -> None:
    """Files code execution wrote: only the server's result blocks, never a
    ``tool_use`` input the model could be asked to fill with someone's id."""
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if not isinstance(kind, str) or not kind.endswith("code_execution_tool_result"):
            continue
        result = block.get("content")
        outputs = result.get("content") if isinstance(result, dict) else None
        for output in outputs if isinstance(outputs, list) else ():
            if isinstance(output, dict):
                _keep(FILE, output.get("file_id"), found)


def _input_item_ids(items: list[Any], found: list[Reference]) -> None:
    """An input items page's item ids: the upstream's ids for what the caller
    sent, or its own ids sent again (checked as they were sent). Nothing else
    on the page binds: a container or cited file there is whatever the caller
    sent, so binding it would make the caller the owner of any id it named
    that had no owner (one made outside the gateway, one whose binding
    failed), or named before such ids were checked."""
    for item in items:
        if isinstance(item, dict):
            _keep(ITEM, item.get("id"), found)


def _items(items: list[Any], found: list[Reference]) -> None:
    """Output items' ids and containers, and the files an output
    message's text cites."""
    for item in items:
        if not isinstance(item, dict):
            continue
        _keep(ITEM, item.get("id"), found)
        _keep(CONTAINER, item.get("container_id"), found)
        environment = item.get("environment")
        if isinstance(environment, dict):
            _keep(CONTAINER, environment.get("container_id"), found)
        content = item.get("content") if item.get("type") == "message" else None
        for part in content if isinstance(content, list) else ():
            annotations = part.get("annotations") if isinstance(part, dict) else None
            for annotation in annotations if isinstance(annotations, list) else ():
                if isinstance(annotation, dict):
                    _cited(annotation, found)


def _cited(annotation: dict[str, Any], found: list[Reference]) -> None:
    """The files an output text's annotation cites: one code interpreter wrote
    (``container_file_citation``, in its container; ``file_path``), the
    caller's; one file search found (``file_citation``), everyone's."""
    kind = annotation.get("type")
    if kind == "container_file_citation":
        _keep(FILE, annotation.get("file_id"), found)
        _keep(CONTAINER, annotation.get("container_id"), found)
    elif kind == "file_path":
        _keep(FILE, annotation.get("file_id"), found)
    elif kind == "file_citation":
        _keep(CITED_FILE, annotation.get("file_id"), found)


def _keep(kind: str, value: object, found: list[Reference]) -> None:
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
        found.append((kind, value))
