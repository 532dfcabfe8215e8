"""extract_record with a scripted call_model: success, retry with validation errors, failure; record models."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import aiohttp
import jsonschema
import pytest
from pydantic import ValidationError

from bot.config import load_settings
from bot.errors import ModelOverloaded
from bot.messages import (
    Message,
    MessageDone,
    ModelRequest,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)
from bot.store.sqlite import SqliteStore
from tools.context import ToolContext
from tools.extract_record import EXTRACTION_MAX_TOKENS, extract_record
from tools.extraction_schemas import Contact, Invoice, LineItem, MeetingNotes, custom_record
from tools.registry import Registry, clean_schema

INVOICE_TEXT = """ACME Tools Lda — Invoice INV-2025-041
Issued 1 May 2025, payable by 31 May 2025.
2 × Hammer @ 12.50 = 25.00
1 × Saw @ 40.00 = 40.00
Subtotal 65.00, VAT 14.95, Total EUR 79.95"""

GOOD_INVOICE = {
    "vendor": "ACME Tools Lda", "invoice_number": "INV-2025-041", "issue_date": "2025-05-01",
    "due_date": "2025-05-31", "currency": "EUR", "subtotal": 65.0, "tax": 14.95, "total": "79.95",
    "line_items": [
        {"description": "Hammer", "quantity": 2, "unit_price": 12.5, "amount": 25},
        {"description": "Saw", "quantity": 1, "unit_price": "40.00", "amount": "40.00"},
    ],
}


class ScriptedModel:
    """A call_model double: answers each request with the next scripted output and records requests."""

    def __init__(self, *outputs: dict[str, Any] | str | Exception):
        self.outputs = list(outputs)
        self.requests: list[ModelRequest] = []

    async def __call__(self, request: ModelRequest) -> MessageDone:
        self.requests.append(request)
        output = self.outputs.pop(0)
        if isinstance(output, Exception):
            raise output
        if isinstance(output, str):  # the model answered in text instead of calling the tool
            message = Message(role="assistant", content=[TextBlock(text=output)])
            return MessageDone(message=message, usage=Usage(50, 10), stop_reason="end_turn", model=request.model)
        block = ToolUseBlock(id=f"toolu_x{len(self.requests)}", name=request.tool_choice or "?", input=output)
        message = Message(role="assistant", content=[block])
        return MessageDone(message=message, usage=Usage(50, 40), stop_reason="tool_use", model=request.model)


@pytest.fixture
async def make_ctx(tmp_path):
    store = SqliteStore(tmp_path / "t.db")
    async with aiohttp.ClientSession() as http:
        def build(model: ScriptedModel) -> ToolContext:
            return ToolContext(user_id="U1", team_id="T1", channel_id="C1", thread_ts="1.0", store=store,
                               http=http, settings=load_settings(THREADBOT_MODEL="claude-test-model"),
                               call_model=model)
        yield build
    await store.close()


@pytest.fixture
def registry() -> Registry:
    return Registry([extract_record])


async def call(registry: Registry, ctx: ToolContext, **input: object) -> ToolResultBlock:
    return await registry.run(ctx, ToolUseBlock(id="toolu_outer", name="extract_record", input=dict(input)))


# --- schema -----------------------------------------------------------------------------------


def test_tool_schema(registry: Registry) -> None:
    (spec,) = registry.specs()
    assert spec.description.startswith("Extract a structured, validated record from text")
    assert spec.input_schema == {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "kind": {"type": "string", "enum": ["invoice", "contact", "meeting_notes", "custom"],
                     "description": 'Which record to build: "invoice", "contact", "meeting_notes", or "custom".'},
            "text": {"type": "string", "minLength": 1, "maxLength": 50000,
                     "description": "The full text to extract from, exactly as the user gave it."},
            "fields": {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                       "default": None,
                       "description": 'For kind "custom" only: the names of the fields to extract, '
                                      'e.g. ["order number", "ship date"].'},
        },
        "required": ["kind", "text"],
    }
    assert registry.status_line("extract_record", {"kind": "invoice", "text": "…"}) == \
        "Extracting the invoice details…"


@pytest.mark.parametrize("model", [Invoice, Contact, MeetingNotes])
def test_record_schemas_are_self_contained(model) -> None:
    schema = clean_schema(model.model_json_schema())
    jsonschema.Draft202012Validator.check_schema(schema)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    assert schema["required"] == list(model.model_fields)  # every key asked for; null when absent


# --- the nested call --------------------------------------------------------------------------


async def test_invoice_success(registry, make_ctx) -> None:
    model = ScriptedModel(GOOD_INVOICE)
    result = await call(registry, make_ctx(model), kind="invoice", text=INVOICE_TEXT)
    assert not result.is_error, result.content

    (request,) = model.requests
    assert request.model == "claude-test-model"
    assert request.tool_choice == "record_invoice"
    assert request.max_tokens == EXTRACTION_MAX_TOKENS <= 4096
    (spec,) = request.tools
    assert spec.name == "record_invoice"
    assert spec.input_schema == clean_schema(Invoice.model_json_schema())
    (message,) = request.messages
    assert message.role == "user" and INVOICE_TEXT in message.text
    assert "never guess or invent" in request.system

    body = json.loads(result.content)
    assert body["kind"] == "invoice"
    assert body["summary"] == ("Invoice INV-2025-041 from ACME Tools Lda issued 2025-05-01 due 2025-05-31 "
                               "total 79.95 EUR (2 line items).")
    record = body["record"]
    # Decimals travel as exact strings, never as binary floats.
    assert (record["subtotal"], record["tax"], record["total"]) == ("65.0", "14.95", "79.95")
    assert record["line_items"][1] == {"description": "Saw", "quantity": "1", "unit_price": "40.00",
                                       "amount": "40.00"}
    assert record["issue_date"] == "2025-05-01" and record["currency"] == "EUR"


async def test_retry_sends_validation_errors_back(registry, make_ctx) -> None:
    bad = {**GOOD_INVOICE, "currency": "EURO", "total": "80.95"}
    model = ScriptedModel(bad, GOOD_INVOICE)
    result = await call(registry, make_ctx(model), kind="invoice", text=INVOICE_TEXT)
    assert not result.is_error, result.content
    assert json.loads(result.content)["record"]["total"] == "79.95"

    assert len(model.requests) == 2
    first, second = model.requests
    assert second.tool_choice == "record_invoice" and second.tools == first.tools
    user, assistant, feedback = second.messages
    assert user == first.messages[0]
    assert assistant.role == "assistant" and assistant.tool_uses[0].id == "toolu_x1"
    (tool_result,) = feedback.content
    assert feedback.role == "user"
    assert isinstance(tool_result, ToolResultBlock)
    assert tool_result.tool_use_id == "toolu_x1" and tool_result.is_error
    assert "currency: 'EURO' is not an ISO 4217 currency code" in tool_result.content


async def test_two_invalid_outputs_fail_with_a_clear_message(registry, make_ctx) -> None:
    bad = {**GOOD_INVOICE, "total": "99.00"}
    model = ScriptedModel(bad, bad)
    result = await call(registry, make_ctx(model), kind="invoice", text=INVOICE_TEXT)
    assert result.is_error
    assert result.content == (
        "Could not extract a valid invoice record: totals are inconsistent: subtotal 65.0 + tax 14.95 "
        "= 79.95, but total is 99.00."
    )
    assert len(model.requests) == 2


async def test_text_answer_instead_of_tool_call_is_retried(registry, make_ctx) -> None:
    contact = {"name": "Ana Silva", "title": "CTO", "company": "Acme", "emails": ["ana@acme.pt"],
               "phones": ["+351 912 345 678"], "address": None, "website": "acme.pt"}
    model = ScriptedModel("Sure, here it is.", contact)
    result = await call(registry, make_ctx(model), kind="contact", text="Ana Silva, CTO at Acme, ana@acme.pt")
    assert not result.is_error, result.content
    assert json.loads(result.content)["summary"] == "Contact: Ana Silva (CTO, Acme); 1 email(s), 1 phone(s)."
    assert model.requests[1].messages[-1].text == "Call record_contact now."


async def test_meeting_notes(registry, make_ctx) -> None:
    notes = {"title": "Launch sync", "date": "2025-06-02", "attendees": ["Ana", "Rui"],
             "decisions": ["Ship on Friday"],
             "action_items": [{"owner": "Rui", "task": "Write release notes", "due": "2025-06-05"}]}
    model = ScriptedModel(notes)
    result = await call(registry, make_ctx(model), kind="meeting_notes", text="Launch sync …")
    body = json.loads(result.content)
    assert body["summary"] == "Meeting notes 'Launch sync' on 2025-06-02: 2 attendees, 1 decisions, 1 action items."
    assert body["record"]["action_items"] == [{"owner": "Rui", "task": "Write release notes", "due": "2025-06-05"}]


async def test_custom_fields(registry, make_ctx) -> None:
    model = ScriptedModel({"order_number": "A-17", "ship_date": None, "json": "x"})
    result = await call(registry, make_ctx(model), kind="custom", text="Order A-17",
                        fields=["Order number", "Ship date", "json"])
    assert not result.is_error, result.content
    schema = model.requests[0].tools[0].input_schema
    assert list(schema["properties"]) == ["order_number", "ship_date", "json"]
    assert schema["properties"]["ship_date"] == {"anyOf": [{"type": "string"}, {"type": "null"}],
                                                 "description": "The Ship date, as stated in the text."}
    body = json.loads(result.content)
    assert body["record"] == {"order_number": "A-17", "ship_date": None, "json": "x"}
    assert body["summary"] == "Extracted 2 of 3 fields; not in the text: ship_date."


async def test_custom_without_fields_is_an_error_without_a_model_call(registry, make_ctx) -> None:
    model = ScriptedModel()
    result = await call(registry, make_ctx(model), kind="custom", text="Order A-17")
    assert result.is_error
    assert result.content == 'kind "custom" needs `fields`: the names of the fields to extract.'
    assert model.requests == []


async def test_model_failure_in_nested_call_is_an_error_result(registry, make_ctx) -> None:
    model = ScriptedModel(ModelOverloaded("529"))
    result = await call(registry, make_ctx(model), kind="invoice", text=INVOICE_TEXT)
    assert result.is_error
    assert "overloaded" in result.content


async def test_unknown_kind_is_rejected(registry, make_ctx) -> None:
    result = await call(registry, make_ctx(ScriptedModel()), kind="receipt", text="x")
    assert result.is_error
    assert "kind: Input should be 'invoice', 'contact', 'meeting_notes' or 'custom'" in result.content


# --- record validation ------------------------------------------------------------------------


def _invoice(**changes: Any) -> Invoice:
    return Invoice.model_validate({**GOOD_INVOICE, **changes})


@pytest.mark.parametrize("given, code", [("eur", "EUR"), (" usd ", "USD"), ("€", "EUR"), ("£", "GBP"), (None, None)])
def test_currency_is_normalised(given, code) -> None:
    assert _invoice(currency=given).currency == code


@pytest.mark.parametrize("given", ["$", "EURO", "XYZ", "kr"])
def test_currency_must_be_iso_4217(given) -> None:
    with pytest.raises(ValidationError, match="is not an ISO 4217 currency code"):
        _invoice(currency=given)


def test_amounts_are_exact_decimals() -> None:
    invoice = _invoice(subtotal=0.1, tax=0.2, total="0.30", line_items=[])
    assert invoice.subtotal + invoice.tax == invoice.total == Decimal("0.30")
    assert invoice.model_dump(mode="json")["total"] == "0.30"


@pytest.mark.parametrize("given", ["1,234.50", "€79.95", "79.95 EUR", "abc", "1.2.3", "NaN"])
def test_amounts_must_be_plain_numbers(given) -> None:
    with pytest.raises(ValidationError, match="not a plain number"):
        _invoice(total=given, subtotal=None, tax=None)


def test_non_finite_numbers_are_rejected() -> None:
    with pytest.raises(ValidationError):
        _invoice(total=float("inf"), subtotal=None, tax=None)


def test_line_item_amount_must_match_quantity_times_price() -> None:
    with pytest.raises(ValidationError, match=r"amount 30 is not quantity 2 × unit_price 12.5 = 25.00"):
        LineItem.model_validate({"description": "Hammer", "quantity": 2, "unit_price": 12.5, "amount": 30})
    assert LineItem.model_validate({"description": "Fee", "quantity": None, "unit_price": None,
                                    "amount": 5}).amount == Decimal("5")


def test_line_items_must_add_up_to_subtotal() -> None:
    lines = [{"description": "Saw", "quantity": 1, "unit_price": 40, "amount": 40}]
    with pytest.raises(ValidationError, match="line item amounts add up to 40, but subtotal is 65.0"):
        _invoice(line_items=lines)


def test_line_items_compared_with_total_minus_tax_when_no_subtotal() -> None:
    lines = [{"description": "Saw", "quantity": 1, "unit_price": 40, "amount": 40}]
    assert _invoice(subtotal=None, tax=9.2, total=49.2, line_items=lines).total == Decimal("49.2")
    with pytest.raises(ValidationError, match=r"but total - tax is 50.0"):
        _invoice(subtotal=None, tax=9.2, total=59.2, line_items=lines)


def test_due_date_before_issue_date() -> None:
    with pytest.raises(ValidationError, match="due_date 2025-04-01 is before issue_date 2025-05-01"):
        _invoice(due_date="2025-04-01")


def test_bad_date_is_rejected() -> None:
    with pytest.raises(ValidationError, match="issue_date"):
        _invoice(issue_date="first of May")


def test_empty_record_is_rejected_naming_the_fields() -> None:
    empty = {name: None for name in Invoice.model_fields} | {"line_items": []}
    with pytest.raises(ValidationError, match=r"nothing could be extracted: every field \(vendor, invoice_number"):
        Invoice.model_validate(empty)


def test_contact_emails_and_phones_are_checked() -> None:
    base = {"name": "Ana", "title": None, "company": None, "emails": [], "phones": [], "address": None,
            "website": None}
    with pytest.raises(ValidationError, match="'ana at acme' is not an email address"):
        Contact.model_validate({**base, "emails": ["ana at acme"]})
    with pytest.raises(ValidationError, match="'call me' is not a phone number"):
        Contact.model_validate({**base, "phones": ["call me"]})
    assert Contact.model_validate({**base, "phones": ["+351  912\t345 678"]}).phones == ["+351 912 345 678"]


def test_custom_record_rejects_unusable_field_names() -> None:
    with pytest.raises(ValueError, match="has no letters or digits"):
        custom_record(["???"])
    with pytest.raises(ValueError, match="at most 30 fields"):
        custom_record([f"field {i}" for i in range(31)])
    assert list(custom_record(["2nd address", "Name", "name"]).model_json_schema()["properties"]) == [
        "field_2nd_address", "name"]
