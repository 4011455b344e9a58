"""Certificates and kubeconfigs of the stack's Kubernetes cluster (``cryptography``, no openssl CLI).

One CA signs everything: the apiserver's serving certificate, the client certificates of the admin
(``O=system:masters``), the controller-manager, the scheduler, the kubelet (``O=system:nodes``,
``CN=system:node:<node>``, so that the Node authorizer and NodeRestriction apply to it) and the
apiserver's client certificate towards the kubelet, plus the kubelet's serving certificate. The
service-account token signing key is a separate RSA key pair. Everything is written once, under
``<state>/kubernetes/pki``; a later ``up`` reuses it.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

if TYPE_CHECKING:
    from pathlib import Path

VALIDITY = datetime.timedelta(days=3650)
CLUSTER_NAME = "mlrepo"


@dataclass(frozen=True)
class ClientIdentity:
    """A client certificate: file stem, common name, organisation (group)."""

    stem: str
    common_name: str
    organization: str | None = None


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _load_ca(pki: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate((pki / "ca.crt").read_bytes())
    key = serialization.load_pem_private_key((pki / "ca.key").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def _create_ca(pki: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = _name(f"{CLUSTER_NAME}-kubernetes-ca")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    _write_key(pki / "ca.key", key)
    (pki / "ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _issue(
    pki: Path,
    stem: str,
    subject: x509.Name,
    *,
    server_names: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
    client: bool = False,
) -> None:
    ca_cert, ca_key = _load_ca(pki)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else [ExtendedKeyUsageOID.SERVER_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server_names or server_ips:
        alternative_names: list[x509.GeneralName] = [x509.DNSName(name) for name in server_names]
        alternative_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in server_ips]
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(pki / f"{stem}.key", key)
    (pki / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ensure_service_account_keys(pki: Path) -> None:
    if (pki / "sa.key").is_file() and (pki / "sa.pub").is_file():
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_key(pki / "sa.key", key)
    (pki / "sa.pub").write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def client_identities(node_name: str) -> tuple[ClientIdentity, ...]:
    return (
        ClientIdentity("admin", "kubernetes-admin", "system:masters"),
        ClientIdentity("controller-manager", "system:kube-controller-manager"),
        ClientIdentity("scheduler", "system:kube-scheduler"),
        ClientIdentity("kubelet", f"system:node:{node_name}", "system:nodes"),
        ClientIdentity("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
    )


def ensure_pki(pki: Path, *, node_name: str, node_ip: str, service_ip: str) -> None:
    """Create every certificate and key that is missing (an existing CA is kept)."""
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    if not (pki / "ca.crt").is_file() or not (pki / "ca.key").is_file():
        _create_ca(pki)
    if not (pki / "apiserver.crt").is_file():
        _issue(
            pki,
            "apiserver",
            _name("kube-apiserver"),
            server_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            server_ips=("127.0.0.1", node_ip, service_ip),
        )
    if not (pki / "kubelet-serving.crt").is_file():
        _issue(pki, "kubelet-serving", _name(node_name), server_names=(node_name,), server_ips=(node_ip, "127.0.0.1"))
    for identity in client_identities(node_name):
        if not (pki / f"{identity.stem}.crt").is_file():
            _issue(pki, identity.stem, _name(identity.common_name, identity.organization), client=True)
    _ensure_service_account_keys(pki)


def write_kubeconfig(path: Path, *, pki: Path, stem: str, server: str) -> None:
    """A kubeconfig with the client certificate ``<stem>.crt`` embedded (mode 0600)."""

    def encoded(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode("ascii")

    user = f"{CLUSTER_NAME}-{stem}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CLUSTER_NAME, "cluster": {"server": server, "certificate-authority-data": encoded("ca.crt")}}
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": encoded(f"{stem}.crt"),
                    "client-key-data": encoded(f"{stem}.key"),
                },
            }
        ],
        "contexts": [{"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": user}}],
        "current-context": CLUSTER_NAME,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)
