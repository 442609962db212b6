import argparse

from retry import retry


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--queue", default="default")
    args = p.parse_args()
    retry(lambda: print(f"worker: listening on {args.queue}"))


if __name__ == "__main__":
    main()
