from shadowswap.cli import app

app(prog_name="shadowswap")
