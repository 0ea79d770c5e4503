"""``shadowswap lint --fix``: flagged calls rewritten into ``op.online_alter_table``, the rest of the file
as it was (libcst keeps every comment, blank line and quote the author wrote).

* ``op.alter_column("t", "c", ...)``, ``op.add_column("t", ...)``, ``op.drop_column``, ``op.create_index``,
  ``op.create_unique_constraint`` become ``batch_op.<same>(...)`` inside ``with op.online_alter_table("t")
  as batch_op:``; flagged calls next to each other on the same table share one block (one copy).
* ``with op.batch_alter_table("t", ...) as batch_op:`` becomes ``with op.online_alter_table("t") as batch_op:``
  (its batch-only arguments dropped), when every call in it maps.
* ``import shadowswap.alembic`` is added after ``from alembic import op`` when missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from shadowswap.lint.linter import FixRequest
from shadowswap.lint.record import BATCH_ONLY

#: the position of the table in each plain call, and its keyword name
TABLE_ARG = {
    "alter_column": 0,
    "add_column": 0,
    "drop_column": 0,
    "create_index": 1,
    "create_unique_constraint": 1,
}


def _op_call(node: cst.CSTNode) -> tuple[str, cst.Call] | None:
    """``op.<name>(...)`` as an expression statement: its name and call."""
    if not isinstance(node, cst.SimpleStatementLine) or len(node.body) != 1:
        return None
    expr = node.body[0]
    if not isinstance(expr, cst.Expr) or not isinstance(expr.value, cst.Call):
        return None
    call = expr.value
    func = call.func
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "op":
        return func.attr.value, call
    return None


def _split_table(name: str, call: cst.Call) -> tuple[cst.BaseExpression, list[cst.Arg]] | None:
    """The call's table expression, and its other arguments in order."""
    args = list(call.args)
    for i, arg in enumerate(args):
        if arg.keyword is not None and arg.keyword.value == "table_name":
            return arg.value, args[:i] + args[i + 1 :]
    position = TABLE_ARG[name]
    positional = [i for i, a in enumerate(args) if a.keyword is None and a.star == ""]
    if len(positional) <= position:
        return None
    index = positional[position]
    return args[index].value, args[:index] + args[index + 1 :]


def _last_without_comma(args: list[cst.Arg]) -> list[cst.Arg]:
    if args and args[-1].comma is not cst.MaybeSentinel.DEFAULT and not _multiline(args):
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return args


def _multiline(args: Sequence[cst.Arg]) -> bool:
    return any(
        isinstance(a.comma, cst.Comma) and isinstance(a.comma.whitespace_after, cst.ParenthesizedWhitespace)
        for a in args
    )


def _same_table(a: cst.BaseExpression, b: cst.BaseExpression) -> bool:
    module = cst.Module(body=[])
    return module.code_for_node(a) == module.code_for_node(b)


class _Rewrite(cst.CSTTransformer):
    METADATA_DEPENDENCIES = (PositionProvider,)

    def __init__(self, wrapper: MetadataWrapper, requests: list[FixRequest]) -> None:
        super().__init__()
        self.positions = wrapper.resolve(PositionProvider)
        self.plain = {r.line for r in requests if r.batch is None}
        self.batches = {r.line for r in requests if r.batch is not None}
        self.rewritten: set[int] = set()
        self.original: dict[cst.CSTNode, cst.CSTNode] = {}

    def _lines(self, node: cst.CSTNode) -> range:
        pos = self.positions[node]
        return range(pos.start.line, pos.end.line + 1)

    # -- batch_alter_table blocks ----------------------------------------------------------------

    def leave_With(self, original: cst.With, updated: cst.With) -> cst.With:
        lines = self._lines(original)
        wanted = [line for line in self.batches if line in lines]
        if not wanted or len(updated.items) != 1:
            return updated
        call = updated.items[0].item
        if not (
            isinstance(call, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value == "batch_alter_table"
        ):
            return updated
        self.rewritten.update(wanted)
        args = [a for a in call.args if a.keyword is None or a.keyword.value not in BATCH_ONLY]
        new_call = call.with_changes(
            func=call.func.with_changes(attr=cst.Name("online_alter_table")), args=_last_without_comma(args)
        )
        return updated.with_changes(items=[updated.items[0].with_changes(item=new_call)])

    # -- plain calls, grouped into blocks ------------------------------------------------------------

    def leave_IndentedBlock(self, original: cst.IndentedBlock, updated: cst.IndentedBlock) -> cst.IndentedBlock:
        body: list[cst.BaseStatement] = []
        group: list[cst.SimpleStatementLine] = []
        table: cst.BaseExpression | None = None

        def flush() -> None:
            nonlocal group, table
            if group:
                assert table is not None
                body.append(self._block(table, group))
            group, table = [], None

        for orig, new in zip(original.body, updated.body, strict=True):
            found = _op_call(orig)
            hit = [line for line in self.plain if line in self._lines(orig)] if found else []
            split = _split_table(found[0], found[1]) if found and hit and found[0] in TABLE_ARG else None
            if not split:
                flush()
                body.append(new)
                continue
            this_table, _args = split
            if table is not None and not _same_table(table, this_table):
                flush()
            assert isinstance(new, cst.SimpleStatementLine)
            group.append(new)
            table = this_table
            self.rewritten.update(hit)
        flush()
        return updated.with_changes(body=body)

    def _block(self, table: cst.BaseExpression, statements: list[cst.SimpleStatementLine]) -> cst.With:
        inner: list[cst.BaseStatement] = []
        for i, stmt in enumerate(statements):
            found = _op_call(stmt)
            assert found is not None
            name, call = found
            split = _split_table(name, call)
            assert split is not None
            _table, args = split
            batch_call = call.with_changes(
                func=cst.Attribute(value=cst.Name("batch_op"), attr=cst.Name(name)), args=_last_without_comma(args)
            )
            expr = stmt.body[0]
            assert isinstance(expr, cst.Expr)
            moved = stmt.with_changes(body=[expr.with_changes(value=batch_call)])
            # the first statement's leading comments and blank lines go above the block
            inner.append(moved.with_changes(leading_lines=[]) if i == 0 else moved)
        online = cst.Call(
            func=cst.Attribute(value=cst.Name("op"), attr=cst.Name("online_alter_table")),
            args=[cst.Arg(value=table)],
        )
        return cst.With(
            items=[cst.WithItem(item=online, asname=cst.AsName(name=cst.Name("batch_op")))],
            body=cst.IndentedBlock(body=inner),
            leading_lines=statements[0].leading_lines,
        )


class _AddImport(cst.CSTTransformer):
    """``import shadowswap.alembic`` after ``from alembic import op`` (or at the top of the imports)."""

    def leave_Module(self, original: cst.Module, updated: cst.Module) -> cst.Module:
        module = cst.Module(body=[])
        for stmt in updated.body:
            code = module.code_for_node(stmt)
            if "import shadowswap.alembic" in code or "from shadowswap import alembic" in code:
                return updated
        line = cst.parse_statement("import shadowswap.alembic  # noqa: F401\n")
        body = list(updated.body)
        at = 0
        for i, stmt in enumerate(body):
            code = module.code_for_node(stmt)
            if code.lstrip().startswith(("import ", "from ")) and "__future__" not in code:
                at = i + 1
                if "from alembic import" in code:
                    break
        body.insert(at, line)
        return updated.with_changes(body=body)


def rewrite(source: str, requests: list[FixRequest]) -> tuple[str, set[int]]:
    """The file with the requested lines rewritten, and the lines that were (some may not be: a call
    inside an expression, a helper function)."""
    wrapper = MetadataWrapper(cst.parse_module(source))
    rewrite_ = _Rewrite(wrapper, requests)
    module = wrapper.visit(rewrite_)
    if rewrite_.rewritten:
        module = module.visit(_AddImport())
    return module.code, rewrite_.rewritten
