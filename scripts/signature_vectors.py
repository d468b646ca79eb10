#!/usr/bin/env python3
"""Writes tests/golden/signatures.json: the verdicts of the network engine's own signature
check (python-ecdsa, as its `pow/service/auth.py` calls it) on keys, signatures and bodies,
so that `powhost serve`'s check is tested against the reference's library without Python.

    pip install ecdsa && python3 scripts/signature_vectors.py

Every `expected` below is computed here by running the reference's steps, not written by
hand: `base64.b64decode` (non-validating), `VerifyingKey.from_string` (compressed only for
33 bytes, every encoding otherwise), `vk.verify(sig, body, hashfunc=sha256)` with the
default 64-byte r||s decoding.
"""

import base64
import hashlib
import json
import os

import ecdsa
from ecdsa import SECP256k1, SigningKey, VerifyingKey
from ecdsa.util import sigencode_der, sigencode_string, sigdecode_string

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "signatures.json")
N = SECP256k1.order


def load_pubkey(pubkey_b64):
    """The reference's `_load_pubkey`."""
    raw = base64.b64decode(pubkey_b64)
    if len(raw) == 33:
        return VerifyingKey.from_string(raw, curve=SECP256k1, valid_encodings=["compressed"])
    return VerifyingKey.from_string(raw, curve=SECP256k1)


def reference_verdict(pubkey_b64, body, signature):
    """What the reference answers: None (no check), "missing", "invalid" or "ok"."""
    if not pubkey_b64:
        return None
    if not signature:
        return "missing"
    try:
        vk = load_pubkey(pubkey_b64)
        vk.verify(base64.b64decode(signature), body, hashfunc=hashlib.sha256)
        return "ok"
    except Exception:
        return "invalid"


def b64(data):
    return base64.b64encode(data).decode()


def sign(sk, body):
    return sk.sign_deterministic(body, hashfunc=hashlib.sha256, sigencode=sigencode_string)


def key_encodings(sk):
    vk = sk.get_verifying_key()
    raw = vk.to_string("raw")
    y_odd = raw[-1] & 1
    return {
        "compressed": vk.to_string("compressed"),
        "raw": raw,
        "uncompressed": vk.to_string("uncompressed"),
        "hybrid": bytes([0x07 if y_odd else 0x06]) + raw,
    }


def main():
    signer = SigningKey.from_secret_exponent(0x5EC2E7_1234_5678_9ABC_DEF0, curve=SECP256k1)
    stranger = SigningKey.from_secret_exponent(0xBADBAD_0042, curve=SECP256k1)
    encodings = key_encodings(signer)
    body = json.dumps({"node_id": 0, "node_count": 1, "url": "http://node:9100"}).encode()
    other = json.dumps({"node_id": 0, "node_count": 1, "url": "http://stranger:9100"}).encode()
    good = sign(signer, body)
    r, s = sigdecode_string(good, N)
    flipped_s = sigencode_string(r, N - s, N)  # the same signature with the other s
    high_s = good if s > N // 2 else flipped_s
    low_s = flipped_s if s > N // 2 else good
    signature_cases = [
        ("a good signature", body, b64(good)),
        ("the low-s form", body, b64(low_s)),
        ("the high-s form, which python-ecdsa accepts", body, b64(high_s)),
        ("a GET's empty body, signed", b"", b64(sign(signer, b""))),
        ("an empty body, unsigned by that signature", b"", b64(good)),
        ("a tampered body", body.replace(b"9100", b"9101"), b64(good)),
        ("a signature for another body", body, b64(sign(signer, other))),
        ("another key's signature", body, b64(sign(stranger, body))),
        ("a DER signature", body, b64(signer.sign_deterministic(body, hashfunc=hashlib.sha256, sigencode=sigencode_der))),
        ("a signature over SHA-256(body) hashed again", body, b64(sign(signer, hashlib.sha256(body).digest()))),
        ("junk base64", body, "!!!!not base64!!!!"),
        ("base64 of 64 junk bytes", body, b64(bytes(range(64)))),
        ("r = 0", body, b64(sigencode_string(0, s, N))),
        ("s = 0", body, b64(sigencode_string(r, 0, N))),
        ("s = n", body, b64(r.to_bytes(32, "big") + N.to_bytes(32, "big"))),
        ("a signature with a byte more", body, b64(good + b"\x00")),
        ("a signature with a byte less", body, b64(good[:-1])),
        ("a good signature, padding dropped", body, b64(good).rstrip("=")),
        ("a good signature with spaces inside", body, " ".join(b64(good)[i:i + 8] for i in range(0, 88, 8))),
        ("a good signature, junk after its padding", body, b64(good) + "AAAA"),
        ("a good signature in url-safe base64", body, base64.urlsafe_b64encode(good).decode()),
        ("a non-ASCII header", body, b64(good)[:-2] + "\u00e9="),
    ]
    signatures = []
    for encoding, key in encodings.items():
        pubkey = b64(key)
        for what, case_body, signature in signature_cases:
            signatures.append({
                "what": what,
                "key_encoding": encoding,
                "signer_pubkey": pubkey,
                "body": case_body.decode(),
                "signature": signature,
                "expected": reference_verdict(pubkey, case_body, signature),
            })
    signatures.append({
        "what": "no signature",
        "key_encoding": "compressed",
        "signer_pubkey": b64(encodings["compressed"]),
        "body": body.decode(),
        "signature": "",
        "expected": reference_verdict(b64(encodings["compressed"]), body, ""),
    })

    compressed = encodings["compressed"]
    raw = encodings["raw"]
    not_on_curve_x = next(
        x for x in range(5, 100)
        if pow((x ** 3 + 7) % SECP256k1.curve.p(), (SECP256k1.curve.p() - 1) // 2, SECP256k1.curve.p()) != 1
    )
    key_cases = [
        ("compressed", b64(compressed)),
        ("raw x||y", b64(raw)),
        ("uncompressed 04||x||y", b64(encodings["uncompressed"])),
        ("hybrid 06/07||x||y", b64(encodings["hybrid"])),
        ("hybrid with the wrong parity", b64(bytes([encodings["hybrid"][0] ^ 1]) + raw)),
        ("compressed with spaces inside", " ".join(b64(compressed)[i:i + 4] for i in range(0, 44, 4))),
        ("junk base64", "not base64 at all!"),
        ("incorrect padding", b64(compressed).rstrip("=")[:-1]),
        ("32 bytes", b64(compressed[1:])),
        ("33 bytes with the 04 prefix", b64(b"\x04" + compressed[1:])),
        ("33 bytes with a junk prefix", b64(b"\x05" + compressed[1:])),
        ("65 bytes with a junk prefix", b64(b"\x05" + raw)),
        ("compressed, x not on the curve", b64(b"\x02" + not_on_curve_x.to_bytes(32, "big"))),
        ("raw, not on the curve", b64(raw[:-1] + bytes([raw[-1] ^ 1]))),
        ("the point at infinity", b64(b"\x00")),
        ("empty after decoding", "===="),
    ]
    keys = []
    for what, pubkey in key_cases:
        try:
            load_pubkey(pubkey)
            accepted = True
        except Exception:
            accepted = False
        keys.append({"what": what, "signer_pubkey": pubkey, "accepted": accepted})

    base64_cases = [
        "YWJj", "YW Jj", "YWJ", "YWI=", "YWI=junk", "YW=I=", "Y===", "YWJj\n", "YW-_Jj", "",
        "=YWJj", "YQ", "YQ==", "YR==", "YWI9", "YW=JjYW=Jj", "YW=JjYW==Jj", "Y=W=J=j", "YQ=", "****",
        "YWJjZA", "YWJjZA==", "YWJjZA===", "YWJjZ===",
    ]
    decodes = []
    for text in base64_cases:
        try:
            decoded = base64.b64decode(text).hex()
        except Exception:
            decoded = None
        decodes.append({"text": text, "decoded_hex": decoded})

    with open(OUT, "w") as f:
        json.dump({
            "generated_by": f"scripts/signature_vectors.py with python-ecdsa {ecdsa.__version__}",
            "signatures": signatures,
            "keys": keys,
            "b64decode": decodes,
        }, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
