"""Shared pieces of the IRIS object model 2.3.1: base class, tolerant scalar types, enums.

Every model derives from :class:`IrisModel`: snake_case attributes and
constructor keywords, PascalCase wire names, unknown wire fields kept
(``extra="allow"``), input values never copied into error messages
(``hide_input_in_errors``).

Wire names that differ from the generated PascalCase are declared as
``validation_alias`` / ``serialization_alias``, never as ``alias``: type
checkers (pyright's ``dataclass_transform``, pydantic's mypy plugin) take an
``alias`` for the constructor's parameter name, which would turn
``PersonGender(gender=...)`` into an error in the user's editor.

The tolerant scalar types try pydantic's native (Rust) parser first and only
fall back to a Python function for the shapes real senders produce that the
native parser rejects (US dates, empty strings). The fast path therefore stays
in pydantic-core for conforming messages.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Self, TypeVar

from pydantic import (
    AliasChoices,
    AliasPath,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_pascal
from pydantic.fields import ComputedFieldInfo, FieldInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from iris_cloud.errors import FieldError, MissingField, UnknownField, ValidationError

__all__ = [
    "MODEL_VERSION",
    "Address",
    "Cpt",
    "CptCode",
    "DateTimeValue",
    "DateValue",
    "DocumentEncoding",
    "DocumentType",
    "Ethnicity",
    "EvaluationType",
    "EvaluationTypeCode",
    "Finding",
    "Gender",
    "GenderCode",
    "GenderContext",
    "GenderContextCode",
    "Guid",
    "HealthPlan",
    "ImageContext",
    "ImageContextCode",
    "IrisModel",
    "Language",
    "Laterality",
    "LateralityCode",
    "MaritalStatus",
    "MaritalStatusCode",
    "Name",
    "Note",
    "OptionalGuid",
    "OptionalInt",
    "OrderControlCode",
    "OrderControlCodeValue",
    "OrderStatus",
    "OrderStatusCode",
    "PersonGender",
    "PrimaryCareProvider",
    "Provider",
    "Race",
    "ResultCode",
    "ResultCodeValue",
    "Site",
    "TextOrList",
    "VersionString",
    "require",
    "validation_error",
    "wire_names",
]

MODEL_VERSION = "2.3.1"
"""The IRIS object model version these classes describe."""


# --------------------------------------------------------------------------- enums


class OrderControlCode(StrEnum):
    """What an OrderRequest asks for."""

    NEW = "NW"
    """New order."""

    CHANGE = "XO"
    """Change of an open order (the whole request again)."""

    CANCEL = "CA"
    """Cancellation of an order."""

    RESEND_RESULT = "ResendResult"
    """Send the result of a graded order again."""


class EvaluationType(StrEnum):
    """Evaluations an order can request (IRIS ids 1,2,3,4,6,7,8,9,12,13; ME from Go)."""

    DR = "DR"
    """Diabetic retinopathy (IRIS id 1)."""

    GLAUCOMA = "Glaucoma"
    """Glaucoma (IRIS id 2)."""

    HIV = "HIV"
    """HIV retinopathy (IRIS id 3)."""

    DRME = "DRME"
    """Diabetic retinopathy and macular edema (IRIS id 4)."""

    DR_REFNOREF = "DR_REFNOREF"
    """Diabetic retinopathy, referable or not referable (IRIS id 6)."""

    AMD = "AMD"
    """Age-related macular degeneration (IRIS id 7)."""

    DR_AMD = "DR_AMD"
    """Diabetic retinopathy and AMD (IRIS id 8)."""

    SP = "SP"
    """IRIS id 9. Not explained by the IRIS reference."""

    DR_AREDS_GLAUC = "DR_AREDS_GLAUC"
    """Diabetic retinopathy, AREDS (AMD) and glaucoma (IRIS id 12)."""

    AI_EYENUK_O1 = "AI_Eyenuk_O1"
    """Eyenuk AI evaluation (IRIS id 13)."""

    ME = "ME"
    """Macular edema (sent by the Go library only)."""


class Laterality(StrEnum):
    """Which eye: OD right, OS left, OU both."""

    OD = "OD"
    """Right eye (oculus dexter)."""

    OS = "OS"
    """Left eye (oculus sinister)."""

    OU = "OU"
    """Both eyes (oculus uterque)."""


class ImageContext(StrEnum):
    """Role of an image within the exam."""

    PRIMARY = "Primary"
    """A primary image of the exam."""

    SECONDARY_VIEW_FIELD = "SecondaryViewField"
    """A secondary field of view."""

    SECONDARY = "Secondary"
    """A secondary image (named in the documentation only)."""

    UNKNOWN = "Unknown"
    """Role unknown."""

    COMPONENT = "Component"
    """A component image."""

    AGGREGATE = "Aggregate"
    """An aggregate image."""

    ENHANCEMENT = "Enhancement"
    """An enhanced copy of another image (``ParentLocalId``)."""

    ADDED_LATE = "AddedLate"
    """Added late."""


class GenderContext(StrEnum):
    """What a PersonGender entry describes."""

    UNKNOWN = "Unknown"
    """Context unknown."""

    IDENTITY_GENDER = "IdentityGender"
    """Gender identity."""

    BIRTH_GENDER = "BirthGender"
    """Sex assigned at birth."""


class Gender(StrEnum):
    """Gender codes."""

    UNKNOWN = "U"
    """Unknown."""

    MALE = "M"
    """Male."""

    FEMALE = "F"
    """Female."""

    N = "N"
    """Not explained by the IRIS reference."""

    OTHER = "O"
    """Other."""

    TRANSGENDER_MALE = "TM"
    """Transgender male."""

    TRANSGENDER_FEMALE = "TF"
    """Transgender female."""

    NOT_DISCLOSED = "ND"
    """Not disclosed."""

    EQ = "EQ"
    """Not explained by the IRIS reference."""

    NL = "NL"
    """Not explained by the IRIS reference."""

    X = "X"
    """Not explained by the IRIS reference."""


class MaritalStatus(StrEnum):
    """HL7 marital status codes."""

    ANNULLED = "A"
    """Annulled."""

    DIVORCED = "D"
    """Divorced."""

    INTERLOCUTORY = "I"
    """Interlocutory."""

    LEGALLY_SEPARATED = "L"
    """Legally separated."""

    MARRIED = "M"
    """Married."""

    DOMESTIC_PARTNER = "P"
    """Domestic partner."""

    SINGLE = "S"
    """Single (never married)."""

    UNMARRIED = "T"
    """Unmarried."""

    WIDOWED = "W"
    """Widowed."""


class ResultCode(StrEnum):
    """Kind of an OrderResult."""

    ADDENDUM = "A"
    """An addendum to an earlier result."""

    CORRECTION = "C"
    """Corrects an earlier result."""

    FINAL = "F"
    """The final result."""

    PRELIMINARY = "P"
    """A preliminary result; a final one follows."""

    RESEND = "R"
    """An earlier result sent again (``ResendResult`` order)."""


class DocumentType(StrEnum):
    """Format of ResultsDocument.Content."""

    PDF = "PDF"
    """A PDF report."""

    HTML = "HTML"
    """An HTML page."""

    ORU = "ORU"
    """An HL7 v2 ORU message."""


class DocumentEncoding(StrEnum):
    """Transfer encoding of ResultsDocument.Content."""

    BASE64 = "Base64"
    """Base64 of the document's bytes."""

    ASCII = "ASCII"
    """The document's text itself."""


class OrderStatus(StrEnum):
    """Status of an order as reported in a result."""

    AWAITING_IMAGES = "AwaitingImages"
    """Created, waiting for images."""

    QUEUED_FOR_GRADING = "QueuedForGrading"
    """Has its images, waiting for a grader."""

    CHECKED_OUT_FOR_GRADING = "CheckedOutForGrading"
    """Being graded."""

    GRADED = "Graded"
    """Graded."""

    ORDER_CANCELLED = "OrderCancelled"
    """Cancelled."""

    UNDER_REVIEW = "UnderReview"
    """Under review."""

    ERROR = "Error"
    """In error."""

    COMPLETE = "Complete"
    """Complete."""


class Race(StrEnum):
    """Common HL7 race codes; any HL7 race code is accepted on the wire."""

    AMERICAN_INDIAN_OR_ALASKA_NATIVE = "1002-5"
    """American Indian or Alaska Native."""

    ASIAN = "2028-9"
    """Asian."""

    BLACK_OR_AFRICAN_AMERICAN = "2054-5"
    """Black or African American."""

    NATIVE_HAWAIIAN_OR_OTHER_PACIFIC_ISLANDER = "2076-8"
    """Native Hawaiian or Other Pacific Islander."""

    OTHER = "2131-1"
    """Other race."""

    WHITE = "2106-3"
    """White."""


class Ethnicity(StrEnum):
    """Common HL7 ethnicity codes; any HL7 ethnicity code is accepted on the wire."""

    HISPANIC_OR_LATINO = "2135-2"
    """Hispanic or Latino."""

    SPANIARD = "2137-8"
    """Spaniard."""

    MEXICAN = "2148-5"
    """Mexican."""

    CENTRAL_AMERICAN = "2155-0"
    """Central American."""

    SOUTH_AMERICAN = "2165-9"
    """South American."""

    LATIN_AMERICAN = "2178-2"
    """Latin American."""

    PUERTO_RICAN = "2180-8"
    """Puerto Rican."""

    CUBAN = "2182-4"
    """Cuban."""

    DOMINICAN = "2184-0"
    """Dominican."""

    MEXICAN_AMERICAN = "2149-3"
    """Mexican American."""

    NOT_HISPANIC_OR_LATINO = "2186-5"
    """Not Hispanic or Latino."""


class Language(StrEnum):
    """Common language codes; any HL7 language code is accepted on the wire."""

    ENGLISH = "en"
    """English."""

    ENGLISH_US = "en-US"
    """English (United States)."""

    FRENCH = "fr"
    """French."""

    SPANISH = "es"
    """Spanish."""

    ITALIAN = "it"
    """Italian."""

    PORTUGUESE = "pt"
    """Portuguese."""

    CHINESE = "zh"
    """Chinese."""


# ------------------------------------------------------------------ tolerant types


def _none_for_empty(value: str) -> None:
    # Go and TypeScript send "" as the zero value of every unset field.
    if value:
        raise PydanticCustomError("empty_expected", "only an empty string may stand for null")
    return None


@dataclass(frozen=True, slots=True)
class _Tolerant:
    """Annotated marker: native validation first, a Python fallback for strings second.

    ``left_to_right`` keeps conforming input on the Rust path; the custom error
    replaces the per-branch union errors with one message that names the
    expected shape and never the value.
    """

    fallback: Callable[[str], Any]
    error_type: str
    error_message: str
    schema_extra: tuple[tuple[str, Any], ...] = ()

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        native = handler(source)
        fallback = core_schema.no_info_after_validator_function(
            self.fallback, core_schema.str_schema()
        )
        return core_schema.union_schema(
            [native, fallback],
            mode="left_to_right",
            custom_error_type=self.error_type,
            custom_error_message=self.error_message,
            serialization=native.get("serialization"),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        assert schema["type"] == "union"
        first = schema["choices"][0]
        native = handler(first[0] if isinstance(first, tuple) else first)
        result: dict[str, Any] = {"anyOf": [native, {"type": "string", **dict(self.schema_extra)}]}
        return result


def _empty_for_none(value: object) -> object:
    return "" if value is None else value


@dataclass(frozen=True, slots=True)
class _TolerantEnum:
    """Annotated marker: a known enum member, else the unknown code kept as ``str``.

    IRIS adds codes without notice, so a receiver keeps them; ``""`` means unset.
    """

    enum: type[StrEnum]

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        known = handler.generate_schema(self.enum)
        empty = core_schema.no_info_after_validator_function(
            _none_for_empty, core_schema.literal_schema([""])
        )
        return core_schema.union_schema(
            [known, empty, core_schema.str_schema()],
            mode="left_to_right",
            custom_error_type="enum_code",
            custom_error_message=f"Input should be a {self.enum.__name__} code (a string)",
            # Unset ("" on the wire) is written back as "": a null would not read back.
            serialization=core_schema.plain_serializer_function_ser_schema(
                _empty_for_none, when_used="json"
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        assert schema["type"] == "union"
        first = schema["choices"][0]
        known = handler(first[0] if isinstance(first, tuple) else first)
        return {"anyOf": [known, {"type": "string", "description": "a code not known to 2.3.1"}]}


_US_DATETIME = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})"
    r"(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,7}))?)?\s*([AaPp][Mm])?)?"
)


def _us_date_only(text: str) -> tuple[int, int, int] | None:
    """``(year, month, day)`` of a bare ``M/D/YYYY``, else None.

    Most US dates on the wire (DOB, scheduled dates) carry no time; reading
    them without the regex is a fifth of an OrderRequest's parse time.
    """
    month, sep1, rest = text.partition("/")
    day, sep2, year = rest.partition("/")
    if (
        sep1
        and sep2
        and 0 < len(month) <= 2
        and 0 < len(day) <= 2
        and len(year) == 4
        and (month + day + year).isdecimal()
    ):
        return int(year), int(month), int(day)
    return None


def _parse_us_datetime(value: str) -> datetime | None:
    """``M/D/YYYY[ h:mm[:ss[.fffffff]][ AM|PM]]`` as .NET writes it; ``""`` is unset."""
    text = value.strip()
    if not text:
        return None
    ymd = _us_date_only(text)
    if ymd is not None:
        try:
            return datetime(*ymd)
        except ValueError:
            raise PydanticCustomError("datetime_format", "date-time out of range") from None
    match = _US_DATETIME.fullmatch(text)
    if match is None:
        raise PydanticCustomError("datetime_format", "not a date-time")
    month, day, year, hour, minute, second, fraction, meridiem = match.groups()
    h = int(hour or 0)
    if meridiem is not None:
        if not 1 <= h <= 12:
            raise PydanticCustomError("datetime_format", "hour out of range")
        h = h % 12 + (12 if meridiem.lower() == "pm" else 0)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(
            int(year), int(month), int(day), h, int(minute or 0), int(second or 0), micro
        )
    except ValueError:
        raise PydanticCustomError("datetime_format", "date-time out of range") from None


def _parse_us_date(value: str) -> date | None:
    ymd = _us_date_only(value.strip())
    if ymd is not None:
        try:
            return date(*ymd)
        except ValueError:
            raise PydanticCustomError("date_format", "date out of range") from None
    parsed = _parse_us_datetime(value)
    if parsed is None:
        return None
    if parsed.time() != datetime.min.time():
        raise PydanticCustomError("date_format", "a date carries no time of day")
    return parsed.date()


_US_DATE_PATTERN = r"^\d{1,2}/\d{1,2}/\d{4}"

DateTimeValue = Annotated[
    datetime,
    _Tolerant(
        _parse_us_datetime,
        "datetime_format",
        "Input should be an ISO 8601 date-time or M/D/YYYY [h:mm[:ss] [AM|PM]]",
        (("pattern", _US_DATE_PATTERN + r"|^$"),),
    ),
]
"""A date-time: ISO 8601 (offset or ``Z``, up to 7 fractional digits, kept to the
microsecond), or a US ``M/D/YYYY[ time]``; ``""`` means unset (use with ``| None``)."""

DateValue = Annotated[
    date,
    _Tolerant(
        _parse_us_date,
        "date_format",
        "Input should be an ISO 8601 date or M/D/YYYY",
        (("pattern", _US_DATE_PATTERN + r"( 12:00(:00)? AM)?$|^$"),),
    ),
]
"""A date: ISO ``YYYY-MM-DD`` or US ``M/D/YYYY`` (``03/15/1958``, ``3/5/1958``); ``""`` is unset."""

_GUID_PATTERN = (
    r"^\{?[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}?$"
)
_GUID_MESSAGE = "Input should be a GUID (8-4-4-4-12 hexadecimal digits)"


@dataclass(frozen=True, slots=True)
class _GuidText:
    """Annotated marker: a GUID, kept as the text that was sent (case preserved)."""

    allow_empty: bool

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        choices: list[core_schema.CoreSchema | tuple[core_schema.CoreSchema, str]] = [
            core_schema.str_schema(pattern=_GUID_PATTERN)
        ]
        if self.allow_empty:
            choices.append(
                core_schema.no_info_after_validator_function(
                    _none_for_empty, core_schema.literal_schema([""])
                )
            )
        return core_schema.union_schema(
            choices,
            mode="left_to_right",
            auto_collapse=False,
            custom_error_type="guid_format",
            custom_error_message=_GUID_MESSAGE,
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        pattern = _GUID_PATTERN + ("|^$" if self.allow_empty else "")
        return {"type": "string", "pattern": pattern, "format": "uuid"}


Guid = Annotated[str, _GuidText(allow_empty=False)]
"""A required GUID string (case and braces kept as sent)."""

OptionalGuid = Annotated[str, _GuidText(allow_empty=True)]
"""A GUID string where ``""`` means unset (use with ``| None``)."""

_VERSION_PATTERN = r"^[Vv]?\d+(\.\d+){1,3}$"


@dataclass(frozen=True, slots=True)
class _VersionText:
    """Annotated marker: ``2.3.1`` or the ``V2.3.1`` other libraries send, kept as sent."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.union_schema(
            [core_schema.str_schema(pattern=_VERSION_PATTERN)],
            auto_collapse=False,
            custom_error_type="version_format",
            custom_error_message="Input should be an object model version such as 2.3.1",
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "pattern": _VERSION_PATTERN, "examples": [MODEL_VERSION]}


VersionString = Annotated[str, _VersionText()]
"""An object model version: ``2.3.1`` or ``V2.3.1``."""

OptionalInt = Annotated[
    int,
    _Tolerant(_none_for_empty, "int_format", "Input should be an integer", (("maxLength", 0),)),
]
"""An integer where ``""`` (Go/TS zero value of a string-typed id) means unset."""


@dataclass(frozen=True, slots=True)
class _OneOf:
    """Annotated marker: a union reported as one error instead of one per member."""

    error_type: str
    error_message: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        schema = handler(source)
        assert schema["type"] == "union"
        return {
            **schema,
            "custom_error_type": self.error_type,
            "custom_error_message": self.error_message,
        }


TextOrList = Annotated[
    str | list[str], _OneOf("text_format", "Input should be a string or a list of strings")
]
"""Free text that some senders give as a list of strings."""

# The ``*Code`` aliases are what fields use: the enum member when the code is
# known, the raw string when it is not.
OrderControlCodeValue = Annotated[OrderControlCode | str, _TolerantEnum(OrderControlCode)]
EvaluationTypeCode = Annotated[EvaluationType | str, _TolerantEnum(EvaluationType)]
LateralityCode = Annotated[Laterality | str, _TolerantEnum(Laterality)]
ImageContextCode = Annotated[ImageContext | str, _TolerantEnum(ImageContext)]
GenderContextCode = Annotated[GenderContext | str, _TolerantEnum(GenderContext)]
GenderCode = Annotated[Gender | str, _TolerantEnum(Gender)]
MaritalStatusCode = Annotated[MaritalStatus | str, _TolerantEnum(MaritalStatus)]
ResultCodeValue = Annotated[ResultCode | str, _TolerantEnum(ResultCode)]
DocumentTypeCode = Annotated[DocumentType | str, _TolerantEnum(DocumentType)]
DocumentEncodingCode = Annotated[DocumentEncoding | str, _TolerantEnum(DocumentEncoding)]
OrderStatusCode = Annotated[OrderStatus | str, _TolerantEnum(OrderStatus)]


# -------------------------------------------------------------------- base model


class _Masked:
    """Stands in for a value a repr must not show."""

    def __repr__(self) -> str:
        return "***"


_MASKED = _Masked()


def _field_title(name: str, info: FieldInfo | ComputedFieldInfo) -> str:
    # Schema titles show the wire name, which is what a schema reader looks for.
    wire = info.serialization_alias if isinstance(info, FieldInfo) else None
    return wire or info.alias or to_pascal(name)


def wire_names(info: FieldInfo) -> list[str]:
    """Every top-level key a field is read from, the written one first."""
    names = [info.serialization_alias] if info.serialization_alias else []
    alias = info.validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
    for choice in choices:
        key = choice.path[0] if isinstance(choice, AliasPath) else choice
        if isinstance(key, str) and key not in names:
            names.append(key)
    return names


@functools.cache
def _keywords(cls: type[BaseModel]) -> frozenset[str]:
    """The keywords a model's constructor knows: field names and every wire name."""
    known = set(cls.model_fields)
    for info in cls.model_fields.values():
        known.update(wire_names(info))
    return frozenset(known)


def _is_python_keyword(key: str) -> bool:
    # Wire names are PascalCase (or ``$schema``): an unknown one is an IRIS field
    # this model does not know yet and is kept. A snake_case keyword that names
    # no field is a typo in the caller's code.
    return key.isidentifier() and not key[0].isupper()


def _unknown_keywords(cls: type[BaseModel], keys: list[str]) -> UnknownField:
    fields = list(cls.model_fields)
    parts = []
    for key in keys:
        shown = repr(key if len(key) <= 40 else key[:40] + "...")
        close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
        parts.append(f"{shown} (did you mean {close[0]!r}?)" if close else shown)
    message = f"{cls.__name__} has no field " + ", ".join(parts)
    if not any("did you mean" in part for part in parts):
        message += f"; its fields: {', '.join(fields)}"
    return UnknownField(message)


class IrisModel(BaseModel):
    """Base of every IRIS object: PascalCase on the wire, unknown fields kept.

    Build one with snake_case keywords (``PersonGender(gender=Gender.MALE)``);
    the wire names are accepted too. A snake_case keyword that names no field
    raises :class:`iris_cloud.errors.UnknownField` naming the closest field;
    an unknown PascalCase keyword is kept as a wire field, as parsing keeps
    unknown fields (:meth:`from_json`, ``model_validate``).

    Serialise with :meth:`to_json` / :meth:`to_dict` (wire names, only the
    fields that were given), parse with :meth:`from_json` (errors become
    :class:`iris_cloud.errors.ValidationError`). ``repr`` shows unknown
    fields by name only, and fields declared ``repr=False`` (patient data)
    as ``***``.
    """

    model_config = ConfigDict(
        alias_generator=to_pascal,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
        hide_input_in_errors=True,
        ser_json_inf_nan="constants",
        field_title_generator=_field_title,
    )

    if not TYPE_CHECKING:
        # Hidden from type checkers, which check keywords against the fields
        # themselves (pyright's dataclass_transform, pydantic's mypy plugin).

        def __init__(self, /, **data: Any) -> None:
            known = _keywords(type(self))
            unknown = [k for k in data if k not in known and _is_python_keyword(k)]
            if unknown:
                raise _unknown_keywords(type(self), unknown) from None
            super().__init__(**data)

        # Validation (model_validate, nested objects) bypasses this check, as
        # it bypasses BaseModel.__init__: only keyword construction is checked.
        __init__.__pydantic_base_init__ = True

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        values = self.__dict__
        for name, info in type(self).model_fields.items():
            value = values.get(name)
            if info.repr:
                yield name, value
            elif value is not None:
                yield name, _MASKED
        for key in self.__pydantic_extra__ or ():
            yield key, _MASKED

    @classmethod
    def from_json(cls, data: bytes | bytearray | str) -> Self:
        """Parse one JSON document into this class.

        Raises:
            iris_cloud.errors.ValidationError: listing every failing field path
                (never the input values).
        """
        try:
            return cls.model_validate_json(data)
        except PydanticValidationError as exc:
            raise validation_error(f"invalid {cls.__name__}", exc) from None

    def to_dict(self) -> dict[str, Any]:
        """The wire form as JSON-compatible Python data (wire names, given fields only)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    def to_json(self, *, indent: int | None = None) -> str:
        """The wire form as a JSON string (wire names, given fields only)."""
        return self.model_dump_json(by_alias=True, exclude_unset=True, indent=indent)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def validation_error(title: str, exc: PydanticValidationError) -> ValidationError:
    """Turn a pydantic error into an iris-cloud :class:`ValidationError`.

    Only the location, the error type and pydantic's message template are
    used: the input value never reaches the result.
    """
    seen: set[tuple[str, str]] = set()
    fields: list[FieldError] = []
    for err in exc.errors(include_url=False, include_context=False, include_input=False):
        path = _path(err["loc"])
        if (path, err["type"]) in seen:
            continue
        seen.add((path, err["type"]))
        fields.append(FieldError(path=path, type=err["type"], message=err["msg"]))
    return ValidationError(title, fields)


_T = TypeVar("_T")


def require(value: _T | None, path: str, message_type: str = "message") -> _T:
    """``value`` narrowed to not ``None``, for a field IRIS always sends.

    ``order = require(result.order, "Order")`` instead of an ``assert``: the
    type checker sees a ``ResultOrder``, and an absent field raises
    :class:`iris_cloud.errors.MissingField` naming ``path`` (a wire path such
    as ``Order.LocalId``), a :class:`~iris_cloud.errors.ValidationError` that
    never carries a value. ``message_type`` names the message in the error.
    """
    if value is None:
        raise MissingField(message_type, path)
    return value


# ---------------------------------------------------------------- shared objects


class Name(IrisModel):
    """A person's name. Repr hides every part (patient names are PHI)."""

    title: str | None = Field(default=None, repr=False)
    first: str | None = Field(default=None, repr=False)
    middle: str | None = Field(default=None, repr=False)
    last: str | None = Field(default=None, repr=False)


class Address(IrisModel):
    """A postal address.

    ``Street`` (Go library) is read as ``Street1`` and ``Zip`` (Go library, one
    documented example) as ``PostalCode``; they are written back under the
    documented names. Repr hides every part.
    """

    street1: str | None = Field(
        default=None,
        serialization_alias="Street1",
        validation_alias=AliasChoices("Street1", "Street"),
        repr=False,
    )
    street2: str | None = Field(default=None, repr=False)
    city: str | None = Field(default=None, repr=False)
    state: str | None = Field(default=None, repr=False)
    postal_code: str | None = Field(
        default=None,
        serialization_alias="PostalCode",
        validation_alias=AliasChoices("PostalCode", "Zip"),
        repr=False,
    )


class PersonGender(IrisModel):
    """One gender statement: its context (identity, birth) and code.

    The TypeScript library names the code ``Value``; it is read as ``Gender``.
    """

    context: GenderContextCode | None = None
    gender: GenderCode | None = Field(
        default=None, serialization_alias="Gender", validation_alias=AliasChoices("Gender", "Value")
    )


class Cpt(IrisModel):
    """A CPT procedure code with its description."""

    code: str | None = None
    description: str | None = None


CptCode = Annotated[
    str | Cpt,
    _OneOf("cpt_format", "Input should be a CPT code string or a {Code, Description} object"),
]
"""A CPT code: the bare string the examples send, or the documented {Code, Description}."""


class Provider(IrisModel):
    """An ordering / referring provider, camera operator (request) or grader."""

    npi: str | None = Field(default=None, validation_alias="NPI", serialization_alias="NPI")
    taxonomy: str | None = None
    name: Name | None = None
    email: str | None = None
    degrees: TextOrList | None = None
    associations: TextOrList | None = None


class PrimaryCareProvider(IrisModel):
    """The primary care provider of a health plan member."""

    npi: str | None = Field(default=None, validation_alias="NPI", serialization_alias="NPI")
    email_address: str | None = None
    name: Name | None = None
    fax_number: str | None = None


class HealthPlan(IrisModel):
    """The patient's health plan; Go/TS fields (payer, group, policy, dates) included."""

    local_id: str | None = None
    name: str | None = None
    member_id: str | None = Field(default=None, repr=False)
    individual_id: str | None = Field(default=None, repr=False)
    primary_care_provider: PrimaryCareProvider | None = None
    health_plan_payer_name: str | None = None
    group_name: str | None = None
    group_number: str | None = None
    effective_date: DateValue | None = None
    expiration_date: DateValue | None = None
    policy_number: str | None = Field(default=None, repr=False)


class Site(IrisModel):
    """The clinic site; Name/Address only matter for automatic site creation."""

    local_id: str | None = None
    name: str | None = None
    address: Address | None = None


class Finding(IrisModel):
    """One finding on one eye, e.g. ``Diabetic Retinopathy`` - ``Mild``.

    Suspected conditions come without a Result. New findings arrive without
    notice, so both are free text.
    """

    finding: str | None = None
    result: str | None = None


class Note(IrisModel):
    """A dated free-text note. Repr hides the text (it may describe the patient)."""

    date: DateTimeValue | None = None
    text: str | None = Field(default=None, repr=False)
