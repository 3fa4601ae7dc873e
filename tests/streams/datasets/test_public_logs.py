import zipfile
from pathlib import Path

from streams.datasets.public_logs import TAFENG_MEMBER, read_tafeng

HEADER = ('\ufeff"TRANSACTION_DT","CUSTOMER_ID","AGE_GROUP","PIN_CODE","PRODUCT_SUBCLASS","PRODUCT_ID",'
          '"AMOUNT","ASSET","SALES_PRICE"\n')
ROWS = [
    '"11/2/2000","00418683","45-49","115","120107","4710857472535","1","48","46"',
    '"11/1/2000","01104905","45-49","115","110411","4710199010372","2","24","30"',
    '"11/1/2000","01104905","45-49","115","110411","4710199010372","1","12","15"',  # same item again that day
    '"11/1/2000","01104905","45-49","115","110999","4710000000001","3","10","12"',
    '"11/1/2000","01104905","45-49","115","110999","4710000000002","-1","10","-12"',  # a return: skipped
]


def test_ta_feng_lines_become_customer_day_baskets(tmp_path: Path) -> None:
    path = tmp_path / "ta_feng.csv.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(TAFENG_MEMBER, HEADER + "\n".join(ROWS) + "\n")
    events = read_tafeng(path)
    assert [e.customer_id for e in events] == ["tf01104905", "tf00418683"]  # in date order
    first = events[0]
    assert first.ts.isoformat() == "2000-11-01T12:00:00+00:00"
    lines = {line.item_id: line for line in first.lines}
    assert set(lines) == {"4710199010372", "4710000000001"}
    assert lines["4710199010372"].quantity == 3 and lines["4710199010372"].unit_price == 15.0
    assert lines["4710000000001"].category == "110999"
    assert first.total == 57.0
