"""The farm's certificates, made with the openssl command line: a self-signed server
certificate, and certificates issued by named CAs (for mTLS and authorization tests)."""

import os
import subprocess

from tlsfarm.supervisor import require


def self_signed(directory, common_name="farm.test"):
    """A P-256 key and a self-signed certificate for `common_name` in `directory`: (cert,
    key) paths."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run([require("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", f"/CN={common_name}"],
                   check=True, capture_output=True)
    return cert, key


def issue(directory, name, subject_alt_name="", server=False, ca_name="ca"):
    """A certificate for `name` from the CA called `ca_name` in `directory` (made on first
    use), with `subject_alt_name` in openssl's syntax ("URI:spiffe://farm/x"). Returns
    (cert, key, ca) paths."""
    openssl = require("openssl")
    ca = os.path.join(directory, f"{ca_name}.pem")
    ca_key = os.path.join(directory, f"{ca_name}.key")
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    if not os.path.exists(ca):
        subprocess.run([openssl, "req", "-x509", *new_key, "-keyout", ca_key, "-out", ca,
                        "-days", "2", "-subj", f"/CN=tlscache farm {ca_name}"],
                       check=True, capture_output=True)
    cert, key, csr, ext = (os.path.join(directory, f"{name}.{suffix}")
                           for suffix in ("pem", "key", "csr", "ext"))
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n")
        if subject_alt_name:
            f.write(f"subjectAltName={subject_alt_name}\n")
        f.write(f"extendedKeyUsage={'serverAuth' if server else 'clientAuth'}\n")
    subprocess.run([openssl, "req", *new_key, "-keyout", key, "-out", csr, "-subj",
                    f"/CN={name}"], check=True, capture_output=True)
    subprocess.run([openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-out", cert, "-days", "2", "-extfile", ext],
                   check=True, capture_output=True)
    return cert, key, ca
