"""The ISO 4217 currencies a program can count in, with their minor-unit exponents (cents: 2, yen: 0).

A fixed table rather than a library: it changes a few times a decade (ZWG in 2024, XCG in 2025), and a code
missing here is refused at program creation (``invalid_currency``), never guessed. Funds, metals and
test codes (XAU, XDR, XTS…) are left out: nobody sells goods priced in them.
"""

from __future__ import annotations

_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF "
    "CHE CHF CHW CNY COP COU CRC CUC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ "
    "GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK "
    "MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB "
    "SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD "
    "USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG ZWL"
)

CURRENCY_EXPONENTS: dict[str, int] = {
    code: exponent
    for exponent, codes in ((0, _EXPONENT_0), (2, _EXPONENT_2), (3, _EXPONENT_3), (4, _EXPONENT_4))
    for code in codes.split()
}
"""Every ISO 4217 currency code, with how many digits its minor unit has."""


def check_currency(value: str) -> str:
    """A pydantic validator: ``value`` is an ISO 4217 code (``EUR``, ``JPY``), else ``invalid_currency``."""
    if value not in CURRENCY_EXPONENTS:
        raise ValueError(f"invalid_currency: {value!r} is not an ISO 4217 currency code such as EUR, USD or JPY")
    return value
