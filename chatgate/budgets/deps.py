"""The budgets, for handlers."""

from typing import Annotated

from fastapi import Depends

from chatgate.budgets.service import Budgets
from chatgate.core.parts import part

BudgetBook = Annotated[Budgets, Depends(part(Budgets))]
