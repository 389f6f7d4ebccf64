"""The usage ledger's parts, for the routes that note usage or read it."""

from typing import Annotated

from fastapi import Depends

from chatgate.core.parts import part
from chatgate.usage.ledger import Ledger
from chatgate.usage.prices import Prices

UsageLedger = Annotated[Ledger, Depends(part(Ledger))]
PriceTable = Annotated[Prices, Depends(part(Prices))]
