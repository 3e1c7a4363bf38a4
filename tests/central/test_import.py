"""Data loading: whole-file validation, errors naming file:line and key, CSV attributes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from central.clock import now
from central.demo import DEMO_FILES
from central.importer import ImportRejectedError, import_file, json_array_items
from central.storage import SQLiteRepository


@pytest.fixture
def repo(tmp_path: Path) -> Iterator[SQLiteRepository]:
    repository = SQLiteRepository(tmp_path / "c.db")
    for path in DEMO_FILES:
        import_file(repository, path, now())
    yield repository
    repository.close()


def _head(repo: SQLiteRepository) -> int:
    with repo.read() as tx:
        return tx.head_version()


def test_bad_jsonl_line_rejects_the_file_and_names_line_and_key(
    repo: SQLiteRepository, tmp_path: Path
) -> None:
    file = tmp_path / "cat.jsonl"
    file.write_text(
        '{"sku": "1", "name": "a"}\n\n{"sku": "2", "flags": ["free"]}\n'
        '{"sku": "3", "min_price": -1}\n',
        encoding="utf-8",
    )
    before = _head(repo)
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, file, now())
    problems = [str(e) for e in caught.value.errors]
    assert len(problems) == 2
    assert problems[0].startswith(f"{file}:3: ")
    assert "flags[0]" in problems[0]
    assert problems[1].startswith(f"{file}:4: ")
    assert "min_price" in problems[1]
    assert _head(repo) == before
    with repo.read() as tx:
        assert tx.document("catalog", "1") is None


def test_json_array_errors_name_the_element_line(repo: SQLiteRepository, tmp_path: Path) -> None:
    file = tmp_path / "promos.json"
    promos = [
        {"id": "ok", "name": "ok", "reward": {"type": "points_fixed", "points": 100}},
        {"id": "bad", "name": "bad", "reward": {"type": "percent_off", "percent": "150"}},
    ]
    file.write_text(json.dumps(promos, indent=2, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, file, now())
    (problem,) = caught.value.errors
    text = file.read_text(encoding="utf-8").splitlines()
    assert problem.line is not None
    assert '"id": "bad"' in "\n".join(text[problem.line - 1:problem.line + 2])
    assert problem.key.startswith("reward")
    assert problem.doc_id == "bad"


def test_not_json_is_named(repo: SQLiteRepository, tmp_path: Path) -> None:
    file = tmp_path / "x.jsonl"
    file.write_text('{"sku": "1"}\n{"sku": \n', encoding="utf-8")
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, file, now())
    assert str(caught.value.errors[0]).startswith(f"{file}:2: not valid JSON")


def test_deleted_document_becomes_a_tombstone(repo: SQLiteRepository, tmp_path: Path) -> None:
    file = tmp_path / "del.jsonl"
    file.write_text('{"id": "C3", "deleted": true}\n', encoding="utf-8")
    result = import_file(repo, file, now())
    assert result.deleted == 1
    with repo.read() as tx:
        stored = tx.document("customer", "C3")
        assert stored is not None
        assert stored.deleted
        assert tx.find_customer("card", "7700003456789") is None


def test_deleting_again_or_deleting_the_unknown_changes_nothing(
    repo: SQLiteRepository, tmp_path: Path
) -> None:
    file = tmp_path / "del.jsonl"
    file.write_text('{"id": "C3", "deleted": true}\n', encoding="utf-8")
    assert import_file(repo, file, now()).deleted == 1
    head = _head(repo)
    again = import_file(repo, file, now())  # a deletion file imported twice
    assert again.deleted == 0
    never = tmp_path / "never.json"
    never.write_text('[{"id": "no-such-id", "deleted": true}]', encoding="utf-8")
    assert import_file(repo, never, now()).deleted == 0
    unknown_sku = tmp_path / "nope.jsonl"  # the kind is known, the document is not
    unknown_sku.write_text('{"sku": "nope", "deleted": true}\n', encoding="utf-8")
    assert import_file(repo, unknown_sku, now()).deleted == 0
    assert _head(repo) == head


def test_csv_errors_name_the_line_a_row_starts_on_after_a_quoted_multiline_value(
    repo: SQLiteRepository, tmp_path: Path
) -> None:
    file = tmp_path / "multi.csv"
    file.write_text(
        'customer_id,attribute,value\n'
        'C1,offer,"{""id"": ""po-x"",\n""reward"": {""type"": ""percent_off"",\n'
        '""percent"": ""5""}}"\n'
        'C404,segment,x\n'
        'C1,segment\n',
        encoding="utf-8",
    )
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, file, now())
    assert [str(error).split(":")[1] for error in caught.value.errors] == ["5", "6"]


def test_a_card_or_phone_finds_one_customer(repo: SQLiteRepository, tmp_path: Path) -> None:
    twins = tmp_path / "twins.jsonl"
    twins.write_text(
        '{"id": "C7", "cards": ["77"], "phone": "+7 900 1"}\n'
        '{"id": "C8", "cards": ["77"], "phone": "7-900-1"}\n',
        encoding="utf-8",
    )
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, twins, now())
    assert [str(error) for error in caught.value.errors] == [
        f"{twins}:2: customer \"C8\": cards: card 77 already belongs to customer 'C7'",
        f"{twins}:2: customer \"C8\": phone: phone 79001 already belongs to customer 'C7'",
    ]
    # a card moves from one customer to another when one file says both
    first = tmp_path / "first.jsonl"
    first.write_text('{"id": "C7", "cards": ["77"]}\n', encoding="utf-8")
    import_file(repo, first, now())
    moved = tmp_path / "moved.jsonl"
    moved.write_text('{"id": "C8", "cards": ["77"]}\n{"id": "C7", "cards": []}\n',
                     encoding="utf-8")
    import_file(repo, moved, now())
    with repo.read() as tx:
        assert tx.find_customer("card", "77") == "C8"
    phone = tmp_path / "phone.csv"
    phone.write_text("customer_id,attribute,value\nC7,phone,+79161234567\n", encoding="utf-8")
    with pytest.raises(ImportRejectedError):  # the demo's C1 has that phone
        import_file(repo, phone, now())


def test_csv_reports_every_bad_row_and_writes_nothing(
    repo: SQLiteRepository, tmp_path: Path
) -> None:
    file = tmp_path / "attrs.csv"
    file.write_text(
        "customer_id,attribute,value\n"
        "C1,status.tier,platinum\n"
        "C9,segment,vip\n"
        "C2,balance,lots\n"
        "C2,offer,{not json}\n"
        "C1,segment\n"
        "C2,segment,vip\n",
        encoding="utf-8",
    )
    before = _head(repo)
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, file, now())
    lines = [e.line for e in caught.value.errors]
    assert lines == [3, 4, 5, 6]
    assert "unknown customer" in str(caught.value.errors[0])
    assert caught.value.errors[1].key == "balance"
    assert _head(repo) == before
    with repo.read() as tx:
        c1 = tx.document("customer", "C1")
        assert c1 is not None
        assert c1.raw is not None
        assert c1.raw["statuses"]["tier"] == "gold"


def test_csv_with_one_bad_row_writes_nothing(repo: SQLiteRepository, tmp_path: Path) -> None:
    file = tmp_path / "attrs.csv"
    file.write_text(
        "customer_id,attribute,value\n"
        + "".join(f"C1,segment,s{i}\n" for i in range(50))
        + "C1,status.,x\n",
        encoding="utf-8",
    )
    before = _head(repo)
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, file, now())
    assert [(e.line, e.key) for e in caught.value.errors] == [(52, "status.")]
    assert _head(repo) == before


def test_csv_applies_attributes_and_balance_as_ledger_row(
    repo: SQLiteRepository, tmp_path: Path
) -> None:
    file = tmp_path / "attrs.csv"
    file.write_text(
        "customer_id,attribute,value\n"
        "C2,status.tier,gold\n"
        "C2,segment,vip\n"
        "C2,favorite.fav-month,4600033\n"
        "C2,balance,20000\n"
        "C2,city,Москва\n",
        encoding="utf-8",
    )
    import_file(repo, file, now())
    with repo.read() as tx:
        c2 = tx.document("customer", "C2")
        assert c2 is not None
        assert c2.raw is not None
        assert c2.body is not None
        body = json.loads(c2.body)
        assert body["statuses"]["tier"] == "gold"
        assert body["segments"] == ["vip"]
        assert body["favorites"] == {"fav-month": ["4600033"]}
        assert body["attributes"]["city"] == "Москва"
        assert body["balance"] == 20000
        assert [(r.kind, r.points) for r in tx.ledger("C2")] == [
            ("adjustment", 12500), ("adjustment", 7500)]


def test_csv_header_is_required(repo: SQLiteRepository, tmp_path: Path) -> None:
    file = tmp_path / "attrs.csv"
    file.write_text("C1,segment,vip\n", encoding="utf-8")
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, file, now())
    assert caught.value.errors[0].line == 1


documents = st.lists(
    st.dictionaries(st.sampled_from(["sku", "name", "n"]),
                    st.one_of(st.text(max_size=5), st.integers(), st.none()), max_size=3),
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(documents, st.sampled_from([None, 1, 2]))
def test_json_array_scanner_finds_every_element_and_its_line(
    docs: list[dict[str, object]], indent: int | None
) -> None:
    text = json.dumps(docs, indent=indent, ensure_ascii=False)
    items = json_array_items(text, "f.json")
    assert [item.obj for item in items] == docs
    # Lines as an editor numbers them: split at "\n" only (str.splitlines also breaks at
    # U+0085 and others, which JSON strings may hold raw).
    lines = text.split("\n")
    for item in items:
        start = lines[item.line - 1]
        assert "{" in start


def test_reimporting_unchanged_documents_takes_no_new_versions(repo: SQLiteRepository) -> None:
    before = _head(repo)
    for path in DEMO_FILES:
        import_file(repo, path, now())
    assert _head(repo) == before


csv_rows = st.lists(
    st.tuples(
        st.sampled_from(["C1", "C2", "C9"]),
        st.sampled_from(["segment", "balance", "status.tier", "name"]),
        st.one_of(st.from_regex(r"-?[0-9]{1,6}", fullmatch=True),
                  st.text(alphabet="abcЖж 12", min_size=1, max_size=6)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(csv_rows)
def test_csv_reports_exactly_the_bad_rows(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str, str, str]]
) -> None:
    folder = tmp_path_factory.mktemp("csv")
    repository = SQLiteRepository(folder / "c.db")
    for path in DEMO_FILES:
        import_file(repository, path, now())
    file = folder / "attrs.csv"
    file.write_text("customer_id,attribute,value\n" + "".join(
        f"{c},{a},{v}\n" for c, a, v in rows), encoding="utf-8")

    def bad(row: tuple[str, str, str]) -> bool:
        customer_id, attribute, value = row
        if customer_id == "C9":
            return True
        if attribute == "balance":
            return not value.strip().lstrip("-").isdigit()
        return attribute == "segment" and not value

    expected = [index + 2 for index, row in enumerate(rows) if bad(row)]
    before = _head(repository)
    if expected:
        with pytest.raises(ImportRejectedError) as caught:
            import_file(repository, file, now())
        assert [e.line for e in caught.value.errors] == expected
        assert _head(repository) == before
    else:
        import_file(repository, file, now())
    repository.close()


def test_null_reads_as_absent_and_overlong_csv_fields_are_named(
    repo: SQLiteRepository, tmp_path: Path
) -> None:
    nulls = tmp_path / "nulls.jsonl"
    nulls.write_text('{"id": "C1", "name": "Анна К.", "cards": ["7700001234567"], '
                     '"balance": null, "purchases": null, "counters": {"visits": null}}\n',
                     encoding="utf-8")
    import_file(repo, nulls, now())
    with repo.read() as tx:
        stored = tx.document("customer", "C1")
    assert stored is not None
    assert stored.body is not None
    assert json.loads(stored.body)["balance"] == 340000  # central's balance stays

    huge = tmp_path / "huge.csv"
    huge.write_text("customer_id,attribute,value\nC1,name,Анна\nC1,note," + "x" * 200_000 + "\n",
                    encoding="utf-8")
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, huge, now())
    assert str(caught.value.errors[0]).startswith(f"{huge}:3: not valid CSV: field larger")


def test_lifetimes_and_periods_past_a_century_are_refused(
    repo: SQLiteRepository, tmp_path: Path
) -> None:
    file = tmp_path / "long.jsonl"
    file.write_text(
        '{"id": "p", "name": "p", "reward": {"type": "points_fixed", "points": 100}, '
        '"points_lifetime": {"activation_days": 3000000}}\n'
        '{"id": "tier-by-spend", "system": "tier", "period_days": 1000000, '
        '"levels": [{"value": "gold", "min_spend": 1}]}\n',
        encoding="utf-8")
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, file, now())
    problems = [str(error) for error in caught.value.errors]
    assert any("points_lifetime.activation_days: must be at most 36500 days" in p
               for p in problems), problems
    assert any("period_days: must be an integer 1..36500" in p for p in problems), problems


def test_csv_refuses_the_documents_own_keys_and_an_unterminated_quote(
    repo: SQLiteRepository, tmp_path: Path
) -> None:
    keys = tmp_path / "keys.csv"
    keys.write_text("customer_id,attribute,value\nC1,cards,7700009999999\nC1,purchases,5\n",
                    encoding="utf-8")
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, keys, now())
    refusal = "cannot be set by CSV (load the customer document instead)"
    assert [str(error) for error in caught.value.errors] == [
        f'{keys}:2: customer "C1": cards: {refusal}',
        f'{keys}:3: customer "C1": purchases: {refusal}',
    ]
    quote = tmp_path / "quote.csv"
    quote.write_text('customer_id,attribute,value\nC1,name,"Анна\nC1,segment,vip\n',
                     encoding="utf-8")
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, quote, now())
    assert str(caught.value.errors[0]).startswith(
        f"{quote}:2: not valid CSV: unexpected end of data")


def test_an_id_with_a_control_character_is_refused(repo: SQLiteRepository, tmp_path: Path) -> None:
    file = tmp_path / "nul.jsonl"
    file.write_text('{"sku": "A\\u0000", "name": "x"}\n', encoding="utf-8")
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, file, now())
    assert str(caught.value.errors[0]) == (
        f'{file}:1: catalog item "A\\x00": sku: must not contain control characters')


def test_csv_key_collision_names_the_row_that_gives_the_key_and_the_earlier_one(
    repo: SQLiteRepository, tmp_path: Path
) -> None:
    anna = "+79161234567"  # C1's phone
    cases = {
        # another row of C2 comes after the phone row: the phone row is the one to blame
        "later.csv": f"C2,phone,{anna}\nC2,name,Борис\n",
        # C1 is in the file too, keeping its phone: still C2's row
        "holder.csv": f"C2,phone,{anna}\nC1,segment,vip\n",
        # a bad row elsewhere does not hide the collision
        "bad.csv": f"C2,phone,{anna}\nC2,balance,abc\n",
    }
    found: dict[str, list[str]] = {}
    for name, rows in cases.items():
        file = tmp_path / name
        file.write_text("customer_id,attribute,value\n" + rows, encoding="utf-8")
        with pytest.raises(ImportRejectedError) as caught:
            import_file(repo, file, now())
        found[name] = [str(e).removeprefix(f"{file}:") for e in caught.value.errors]
    collision = "2: customer \"C2\": phone: phone 79161234567 already belongs to customer 'C1'"
    assert found["later.csv"] == [collision]
    assert found["holder.csv"] == [collision]
    assert found["bad.csv"][0] == collision
    assert found["bad.csv"][1].startswith('3: customer "C2": balance: ')

    # two customers given one new phone in the file: the second row names the first
    file = tmp_path / "both.csv"
    file.write_text("customer_id,attribute,value\nC3,name,Вера\nC2,phone,+79000000001\n"
                    "C3,phone,+7 900 000-00-01\n", encoding="utf-8")
    with pytest.raises(ImportRejectedError) as caught:
        import_file(repo, file, now())
    expected = (f"{file}:4: customer \"C3\": phone: phone 79000000001 already belongs to "
                "customer 'C2' (given on line 3)")
    assert [str(e) for e in caught.value.errors] == [expected]
