#!/usr/bin/env python3
"""test/lib/patroni_config.py: one Patroni member's configuration for the
tests, made from README.md's (so the two cannot drift).

    patroni_config.py BASE.yml [OVERLAY.yml] --name NAME --dir DIR --rest-port P --pg-port P
                      --etcd-port P --api-url URL --bin-dir DIR [--set dcs.parameters.KEY=VALUE ...] > NAME.yml

BASE.yml is README's configuration of pg1; OVERLAY.yml (README's asynchronous
variant) is merged into it, key by key.  Then only what a test on one machine
must change: the member's name, its ports on 127.0.0.1, its folders under DIR
(DIR/NAME/data, DIR/NAME/sock, its log DIR/NAME/server.log), the key file
DIR/secret_key, the Moneroo API's address, the bin_dir of the major under test, and each --set.  Every key it
changes must be in BASE.yml already: README's file is what runs.
"""
import argparse
import sys

import yaml


def merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v


def put(doc, path, value):
    keys = path.split(".") if not isinstance(path, list) else path
    node = doc
    for k in keys[:-1]:
        if not isinstance(node.get(k), dict):
            sys.exit("patroni_config.py: README's configuration has no %s" % ".".join(keys[:-1]))
        node = node[k]
    if keys[-1] not in node:
        sys.exit("patroni_config.py: README's configuration has no %s" % ".".join(keys))
    node[keys[-1]] = value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("overlay", nargs="?")
    ap.add_argument("--name", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--rest-port", required=True)
    ap.add_argument("--pg-port", required=True)
    ap.add_argument("--etcd-port", required=True)
    ap.add_argument("--api-url", required=True)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--set", action="append", default=[])
    a = ap.parse_args()
    with open(a.base) as f:
        doc = yaml.safe_load(f)
    if a.overlay:
        with open(a.overlay) as f:
            merge(doc, yaml.safe_load(f))
    home = "%s/%s" % (a.dir, a.name)
    put(doc, "name", a.name)
    put(doc, "restapi.listen", "127.0.0.1:%s" % a.rest_port)
    put(doc, "restapi.connect_address", "127.0.0.1:%s" % a.rest_port)
    put(doc, "etcd3.hosts", "127.0.0.1:%s" % a.etcd_port)
    put(doc, "postgresql.listen", "127.0.0.1:%s" % a.pg_port)
    put(doc, "postgresql.connect_address", "127.0.0.1:%s" % a.pg_port)
    put(doc, "postgresql.data_dir", home + "/data")
    put(doc, "postgresql.bin_dir", a.bin_dir)   # the major under test (README's is 15)
    put(doc, "postgresql.pgpass", home + "/pgpass")
    put(doc, "postgresql.parameters.unix_socket_directories", home + "/sock")
    put(doc, "postgresql.parameters.log_directory", home)
    put(doc, "postgresql.parameters.log_filename", "server.log")
    dcs = ["bootstrap", "dcs", "postgresql", "parameters"]
    put(doc, dcs + ["moneroo.api_url"], a.api_url)
    put(doc, dcs + ["moneroo.secret_key_file"], a.dir + "/secret_key")
    for kv in a.set:
        k, v = kv.split("=", 1)
        if not k.startswith("dcs.parameters."):
            sys.exit("patroni_config.py: --set takes dcs.parameters.KEY=VALUE")
        doc["bootstrap"]["dcs"]["postgresql"]["parameters"][k[len("dcs.parameters."):]] = v
    yaml.safe_dump(doc, sys.stdout, default_flow_style=False, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
