"""The records extract_record can produce: pydantic models whose JSON schema the model fills in."""
from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

# Active ISO 4217 currency codes (plus XAU/XAG precious metals are deliberately left out).
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
    CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
    GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
    LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR
    NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP
    STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG
    XOF XPF YER ZAR ZMW ZWG
    """.split()
)
# Symbols that name exactly one currency; "$" or "kr" do not, so the model must give the code.
_CURRENCY_SYMBOLS = {"€": "EUR", "£": "GBP", "₹": "INR", "₩": "KRW", "₺": "TRY", "₽": "RUB", "₪": "ILS"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PLAIN_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_CENT = Decimal("0.01")


def _currency(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    code = _CURRENCY_SYMBOLS.get(text, text.upper())
    if code not in ISO_4217:
        raise ValueError(f"{value!r} is not an ISO 4217 currency code (e.g. EUR, USD, GBP)")
    return code


def _money(value: Any) -> Any:
    # Accept JSON numbers and plain numeric strings; "1,234.50" or "€12" are ambiguous, so ask again.
    if isinstance(value, str):
        text = value.strip()
        if not _PLAIN_NUMBER.match(text):
            raise ValueError(f"{value!r} is not a plain number; write it like 1234.50 without symbols or separators")
        try:
            return Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a number") from None
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value.strip()


def _phone(value: str) -> str:
    if sum(c.isdigit() for c in value) < 5:
        raise ValueError(f"{value!r} is not a phone number")
    return " ".join(value.split())


Money = Annotated[
    Decimal,
    BeforeValidator(_money),
    Field(description="Plain number, e.g. 1234.50 (no currency symbol, no thousands separator)."),
]
Currency = Annotated[str, BeforeValidator(_currency), Field(description="ISO 4217 code, e.g. EUR, USD, GBP.")]
IsoDate = Annotated[date, Field(description="YYYY-MM-DD")]
Email = Annotated[str, AfterValidator(_email)]
Phone = Annotated[str, AfterValidator(_phone)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _not_empty(self) -> "_Record":
        if all(value in (None, [], "") for value in self.__dict__.values()):
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"nothing could be extracted: every field ({names}) is empty")
        return self


class LineItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str
    quantity: Money | None
    unit_price: Money | None
    amount: Money | None

    @model_validator(mode="after")
    def _amount_matches(self) -> "LineItem":
        if None not in (self.quantity, self.unit_price, self.amount):
            expected = self.quantity * self.unit_price  # type: ignore[operator]
            if abs(expected - self.amount) > _CENT:  # type: ignore[operator]
                raise ValueError(
                    f"amount {self.amount} is not quantity {self.quantity} × unit_price {self.unit_price} "
                    f"= {expected.quantize(_CENT)}"
                )
        return self


class Invoice(_Record):
    """An invoice: who billed, when, how much, for what."""

    vendor: str | None = Field(description="Who issued the invoice.")
    invoice_number: str | None
    issue_date: IsoDate | None
    due_date: IsoDate | None
    currency: Currency | None
    subtotal: Money | None = Field(description="Total before tax.")
    tax: Money | None
    total: Money | None = Field(description="Amount due, including tax.")
    line_items: list[LineItem]

    @model_validator(mode="after")
    def _consistent(self) -> "Invoice":
        if self.issue_date and self.due_date and self.due_date < self.issue_date:
            raise ValueError(f"due_date {self.due_date} is before issue_date {self.issue_date}")
        if None not in (self.subtotal, self.tax, self.total):
            if abs(self.subtotal + self.tax - self.total) > _CENT:  # type: ignore[operator]
                raise ValueError(
                    f"totals are inconsistent: subtotal {self.subtotal} + tax {self.tax} "
                    f"= {self.subtotal + self.tax}, but total is {self.total}"  # type: ignore[operator]
                )
        amounts = [item.amount for item in self.line_items]
        if amounts and None not in amounts:
            lines = sum(amounts, Decimal(0))  # type: ignore[arg-type]
            if self.subtotal is not None:
                target, label = self.subtotal, "subtotal"
            elif self.tax is not None and self.total is not None:
                target, label = self.total - self.tax, "total - tax"
            else:
                return self  # a bare total may hide tax, so there is nothing safe to compare
            if abs(lines - target) > _CENT * len(amounts):
                raise ValueError(f"line item amounts add up to {lines}, but {label} is {target}")
        return self


class Contact(_Record):
    """A person's or company's contact details."""

    name: str | None = Field(description="Full name of the person.")
    title: str | None = Field(description="Job title.")
    company: str | None
    emails: list[Email]
    phones: list[Phone] = Field(description="Phone numbers as written, with country code when given.")
    address: str | None = Field(description="Postal address on one line.")
    website: str | None


class ActionItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owner: str | None = Field(description="Who will do it.")
    task: str = Field(min_length=1)
    due: IsoDate | None


class MeetingNotes(_Record):
    """Meeting notes: who met, what was decided, who does what by when."""

    title: str | None
    date: IsoDate | None
    attendees: list[str]
    decisions: list[str]
    action_items: list[ActionItem]


RECORDS: dict[str, type[BaseModel]] = {"invoice": Invoice, "contact": Contact, "meeting_notes": MeetingNotes}

MAX_CUSTOM_FIELDS = 30


def custom_record(fields: list[str]) -> type[BaseModel]:
    """A record with the user's own field names, each a string or null.

    Field names become snake_case keys (an alias, so names like "json" or "model_config" are safe).
    """
    keys: dict[str, str] = {}
    for label in fields:
        key = re.sub(r"[^0-9a-z]+", "_", label.strip().lower()).strip("_")[:60]
        if not key:
            raise ValueError(f"field name {label!r} has no letters or digits")
        if key[0].isdigit():
            key = f"field_{key}"
        keys.setdefault(key, label.strip())
    if not keys:
        raise ValueError("no field names given")
    if len(keys) > MAX_CUSTOM_FIELDS:
        raise ValueError(f"at most {MAX_CUSTOM_FIELDS} fields, got {len(keys)}")
    definitions: dict[str, Any] = {
        f"f{i}": (str | None, Field(alias=key, description=f"The {label}, as stated in the text."))
        for i, (key, label) in enumerate(keys.items())
    }
    return create_model(  # type: ignore[call-overload]
        "CustomRecord", __base__=_Record, **definitions
    )
