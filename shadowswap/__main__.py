from shadowswap.cli import app

if __name__ == "__main__":  # not when multiprocessing's spawn re-imports the main module (shadowswap demo)
    app(prog_name="shadowswap")
