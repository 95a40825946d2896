"""Maison Fournil's shops and what they sell, and the baskets customers fill on each channel.

Prices are in cents, tax included (French shelf prices), so orders carry no separate tax.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

STORES = {
    "lyon": "Maison Fournil Lyon Croix-Rousse",
    "paris-marais": "Maison Fournil Paris Marais",
    "bordeaux": "Maison Fournil Bordeaux Chartrons",
    "lille": "Maison Fournil Lille Vieux-Lille",
}
STORE_CODES = {"lyon": "LYO", "paris-marais": "PAR", "bordeaux": "BDX", "lille": "LIL"}
FREE_SHIPPING_FROM = 4900
SHIPPING = 490


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    category: str
    price: int
    kind: str = "product"
    brand: str = "Maison Fournil"


def _products(*items: tuple[str, str, str, int]) -> dict[str, Product]:
    return {sku: Product(sku, name, category, price) for sku, name, category, price in items}


CATALOG = _products(
    ("VIE-CROISSANT", "Croissant", "viennoiserie", 130),
    ("VIE-PAIN-CHOC", "Pain au chocolat", "viennoiserie", 150),
    ("VIE-RAISINS", "Pain aux raisins", "viennoiserie", 190),
    ("VIE-CHAUSSON", "Chausson aux pommes", "viennoiserie", 220),
    ("PAIN-BAGUETTE", "Baguette tradition", "pain", 120),
    ("PAIN-CAMPAGNE", "Pain de campagne", "pain", 420),
    ("PAIN-COMPLET", "Pain complet aux graines", "pain", 360),
    ("BOI-EXPRESSO", "Expresso", "boisson chaude", 190),
    ("BOI-CAFE-CREME", "Café crème", "boisson chaude", 320),
    ("BOI-CAPPUCCINO", "Cappuccino", "boisson chaude", 380),
    ("BOI-CHOCOLAT", "Chocolat chaud", "boisson chaude", 390),
    ("BOI-THE", "Thé Earl Grey", "boisson chaude", 300),
    ("BOI-CITRONNADE", "Citronnade maison", "boisson fraîche", 350),
    ("TRA-JAMBON-BEURRE", "Sandwich jambon-beurre", "traiteur", 550),
    ("TRA-POULET", "Sandwich poulet crudités", "traiteur", 690),
    ("TRA-QUICHE", "Quiche lorraine", "traiteur", 490),
    ("TRA-SALADE", "Salade de saison", "traiteur", 890),
    ("PAT-ECLAIR", "Éclair au chocolat", "pâtisserie", 380),
    ("PAT-FLAN", "Flan pâtissier", "pâtisserie", 340),
    ("PAT-TARTELETTE", "Tartelette aux framboises", "pâtisserie", 450),
    ("PAT-COOKIE", "Cookie aux noisettes", "pâtisserie", 250),
    ("PAT-TARTE-POMMES", "Tarte aux pommes (6 parts)", "pâtisserie", 1800),
    ("PAT-FRAISIER", "Fraisier (6 parts)", "pâtisserie", 3400),
    ("PAT-PARIS-BREST", "Paris-brest (6 parts)", "pâtisserie", 2800),
    ("PAT-MACARONS-12", "Coffret de 12 macarons", "pâtisserie", 1900),
    ("PLT-MINI-VIENN", "Plateau de 24 mini-viennoiseries", "traiteur", 2200),
    ("EPI-CAFE-GRAINS-250", "Café en grains 250 g", "café", 990),
    ("EPI-CAFE-GRAINS-1K", "Café en grains 1 kg", "café", 3400),
    ("EPI-CAFE-MOULU-250", "Café moulu 250 g", "café", 950),
    ("EPI-CONFITURE", "Confiture d'abricots 320 g", "épicerie", 690),
    ("EPI-PATE-TARTINER", "Pâte à tartiner noisette 350 g", "épicerie", 850),
    ("EPI-COFFRET-THE", "Coffret de thés", "épicerie", 2400),
    ("EPI-MUG", "Mug Maison Fournil", "maison", 1400),
)
GIFT_CARDS = {
    "CADEAU-25": Product("CADEAU-25", "Carte cadeau 25 €", "carte cadeau", 2500, kind="gift_card"),
    "CADEAU-50": Product("CADEAU-50", "Carte cadeau 50 €", "carte cadeau", 5000, kind="gift_card"),
}
PRODUCTS = {**CATALOG, **GIFT_CARDS}

Basket = dict[str, int]  # sku -> quantity


def _add(basket: Basket, sku: str, quantity: int = 1) -> None:
    basket[sku] = basket.get(sku, 0) + quantity


def breakfast(rng: random.Random) -> Basket:
    basket: Basket = {}
    _add(
        basket,
        rng.choices(["BOI-CAFE-CREME", "BOI-EXPRESSO", "BOI-CAPPUCCINO", "BOI-CHOCOLAT", "BOI-THE"], [5, 3, 2, 1, 1])[
            0
        ],
    )
    for _ in range(rng.choice((1, 1, 2))):
        _add(basket, rng.choices(["VIE-CROISSANT", "VIE-PAIN-CHOC", "VIE-RAISINS", "VIE-CHAUSSON"], [5, 5, 2, 1])[0])
    return basket


def bread_run(rng: random.Random, *, weekend: bool) -> Basket:
    basket: Basket = {"PAIN-BAGUETTE": rng.choice((1, 1, 2, 3))}
    if rng.random() < 0.25:
        _add(basket, rng.choice(["PAIN-CAMPAGNE", "PAIN-COMPLET"]))
    if weekend or rng.random() < 0.3:
        _add(basket, "VIE-CROISSANT", rng.randint(2, 6))
        _add(basket, "VIE-PAIN-CHOC", rng.randint(0, 4))
    return {sku: q for sku, q in basket.items() if q}


def lunch(rng: random.Random) -> Basket:
    basket: Basket = {rng.choices(["TRA-JAMBON-BEURRE", "TRA-POULET", "TRA-QUICHE", "TRA-SALADE"], [4, 3, 2, 2])[0]: 1}
    if rng.random() < 0.6:
        _add(basket, "BOI-CITRONNADE")
    if rng.random() < 0.5:
        _add(basket, rng.choice(["PAT-ECLAIR", "PAT-FLAN", "PAT-COOKIE"]))
    return basket


def pastries(rng: random.Random) -> Basket:
    if rng.random() < 0.35:
        return {
            rng.choices(["PAT-TARTE-POMMES", "PAT-FRAISIER", "PAT-PARIS-BREST", "PAT-MACARONS-12"], [4, 2, 2, 2])[0]: 1
        }
    basket: Basket = {}
    for _ in range(rng.randint(2, 5)):
        _add(basket, rng.choice(["PAT-ECLAIR", "PAT-FLAN", "PAT-TARTELETTE", "PAT-COOKIE"]))
    return basket


# when in the day (local hours) each kind of visit happens
VISIT_HOURS = {"breakfast": (7.0, 10.5), "bread": (7.5, 19.5), "lunch": (11.5, 14.0), "pastries": (10.0, 19.0)}


def store_visit(rng: random.Random, *, weekend: bool) -> tuple[Basket, tuple[float, float]]:
    """A basket and the hours it is bought between: coffee and croissants early, sandwiches at noon."""
    kind = rng.choices(list(VISIT_HOURS), [5, 4, 3, 3 if weekend else 1])[0]
    if kind == "breakfast":
        basket = breakfast(rng)
    elif kind == "bread":
        basket = bread_run(rng, weekend=weekend)
    else:
        basket = lunch(rng) if kind == "lunch" else pastries(rng)
    return basket, VISIT_HOURS[kind]


def web_order(rng: random.Random, *, december: bool) -> Basket:
    basket: Basket = {}
    coffee = rng.choices(["EPI-CAFE-GRAINS-250", "EPI-CAFE-GRAINS-1K", "EPI-CAFE-MOULU-250"], [6, 2, 3])[0]
    _add(basket, coffee, rng.choice((1, 1, 2, 3)) if coffee != "EPI-CAFE-GRAINS-1K" else 1)
    for sku in ("EPI-CONFITURE", "EPI-PATE-TARTINER", "EPI-COFFRET-THE", "EPI-MUG"):
        if rng.random() < (0.35 if december else 0.15):
            _add(basket, sku)
    if rng.random() < (0.3 if december else 0.05):
        _add(basket, rng.choice(list(GIFT_CARDS)))
    return basket


def phone_order(rng: random.Random) -> Basket:
    basket: Basket = {rng.choices(["PAT-TARTE-POMMES", "PAT-FRAISIER", "PAT-PARIS-BREST"], [5, 3, 2])[0]: 1}
    if rng.random() < 0.3:
        _add(basket, "PLT-MINI-VIENN")
    return basket


def app_order(rng: random.Random, *, weekend: bool) -> tuple[Basket, tuple[float, float]]:
    """Click and collect: breakfast on the way to work, or the bread for the evening."""
    if rng.random() < 0.5:
        return breakfast(rng), VISIT_HOURS["breakfast"]
    return bread_run(rng, weekend=weekend), (16.0, 19.5)


def lines(basket: Basket) -> list[dict[str, object]]:
    """Order lines for a basket; a lunch "formule" (sandwich + drink + dessert) gets 1 € off."""
    out: list[dict[str, object]] = []
    formule = (
        any(s.startswith("TRA-") for s in basket)
        and "BOI-CITRONNADE" in basket
        and any(s in basket for s in ("PAT-ECLAIR", "PAT-FLAN", "PAT-COOKIE"))
    )
    for sku, quantity in basket.items():
        p = PRODUCTS[sku]
        line: dict[str, object] = {
            "sku": sku,
            "name": p.name,
            "category": p.category,
            "brand": p.brand,
            "quantity": quantity,
            "unit_price": p.price,
            "kind": p.kind,
        }
        if formule and sku.startswith("TRA-"):
            line["discount"] = 100
            formule = False
        out.append(line)
    return out


def shipping_for(basket: Basket) -> int:
    subtotal = sum(PRODUCTS[sku].price * q for sku, q in basket.items())
    return 0 if subtotal >= FREE_SHIPPING_FROM else SHIPPING
