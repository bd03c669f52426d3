"""Files a Responses answer cites are named later by whoever may read them.

Code interpreter writes files in its container, and the answer's text cites
them (``container_file_citation``: the file's and the container's ids);
file search cites the files it found (``file_citation``), which live in a
vector store the operator shares with every customer. Both are in the
gateway's one upstream account. A cited container file is its caller's: the
caller names it (an ``input_file``), anyone else gets 404, recorded,
unforwarded. A file file search cites is everyone's, as its store is.
Before, neither was bound: the caller got 404 for the file it was shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.e2e.test_reference_binding_e2e import (
    CODE,
    Log,
    assert_not_found_unforwarded,
    openai_client,
    two_customers,
)
from tests.support.processes import Admin, Proc

pytestmark = pytest.mark.e2e

SHARED_STORE = "vs_operator_docs"
SEARCH: Any = [{"type": "file_search", "vector_store_ids": [SHARED_STORE]}]


def cited(response: Any) -> list[Any]:
    """The annotations of a response's output text."""
    return [annotation for item in response.output if item.type == "message"
            for part in item.content if part.type == "output_text"
            for annotation in part.annotations]


def read_file(client: openai.OpenAI, file_id: str) -> Any:
    return client.responses.create(model="haiku-lite", input=[{"role": "user", "content": [
        {"type": "input_file", "file_id": file_id},
        {"type": "input_text", "text": "what is in it?"}]}])


def test_files_code_interpreter_cites_are_its_callers(
    gateway: Proc, admin: Admin, standin_log: Log
) -> None:
    owner_key, stranger_key = two_customers(admin)
    owner, stranger = openai_client(gateway, owner_key), openai_client(gateway, stranger_key)

    made = owner.responses.create(model="haiku-lite", input="chart it", tools=CODE)
    with owner.responses.stream(model="haiku-lite", input="chart it", tools=CODE) as stream:
        added = [event.annotation for event in stream
                 if event.type == "response.output_text.annotation.added"]
        final = stream.get_final_response()
    citations = [*cited(made), *cited(final)]
    assert [c.type for c in citations] == ["container_file_citation"] * 2, citations
    assert [a.file_id for a in added] == [citations[1].file_id]  # type: ignore[union-attr]
    own = [c.file_id for c in citations]
    assert own[0] != own[1]

    for file_id in own:
        before = len(standin_log())
        with pytest.raises(openai.NotFoundError) as refused:
            read_file(stranger, file_id)
        assert refused.value.body["code"] == "file-not-found", refused.value.body  # type: ignore[index]
        assert_not_found_unforwarded(refused.value, admin, standin_log, before, "file-not-found")
    for file_id in own:
        assert read_file(owner, file_id).status == "completed"


def test_a_file_file_search_cites_is_named_by_every_customer(
    gateway_factory: Callable[..., Proc], standin_log: Log
) -> None:
    # Its store is shared with every customer, so the file is no one's own: the
    # first customer it is cited to must not keep it from the next.
    gateway = gateway_factory(env={"GATEWAY_SHARED_VECTOR_STORE_IDS": SHARED_STORE})
    admin = Admin(gateway.url)
    owner_key, stranger_key = two_customers(admin)
    owner, stranger = openai_client(gateway, owner_key), openai_client(gateway, stranger_key)

    made = owner.responses.create(model="haiku-lite", input="look it up", tools=SEARCH)
    with owner.responses.stream(model="haiku-lite", input="look it up", tools=SEARCH) as stream:
        final = stream.get_final_response()
    citations = [*cited(made), *cited(final)]
    assert [c.type for c in citations] == ["file_citation"] * 2, citations
    for citation in citations:
        assert read_file(owner, citation.file_id).status == "completed"
        assert read_file(stranger, citation.file_id).status == "completed"
    # A file no search cited is still no one's.
    before = len(standin_log())
    with pytest.raises(openai.NotFoundError) as refused:
        read_file(stranger, "file-never-cited")
    assert_not_found_unforwarded(refused.value, admin, standin_log, before, "file-not-found")
