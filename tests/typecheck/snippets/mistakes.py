"""The negative control: each line marked ``# expect: WORD`` is reported by both checkers."""

from __future__ import annotations

from iris_cloud.model import Order, OrderResult, PersonGender

typo = Order(local_id="ORD-1", evaluation_type=["DR"])  # expect: evaluation_type
wire_case = PersonGender(gendre="M")  # expect: gendre
result = OrderResult.from_json(b'{"Version": "2.3.1"}')
unchecked: str = result.order.local_id  # expect: None
