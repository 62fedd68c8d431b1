SUMMARY = "Edge historian agent: durable InfluxDB write buffer and forwarder"
DESCRIPTION = "hissrv takes InfluxDB writes (HTTP /write, /api/v2/write, UDP line \
protocol) on the gateway, commits them to a SQLite write-ahead buffer before it \
answers, and delivers them to the real InfluxDB upstream in order, through \
outages and power cuts."
HOMEPAGE = "https://github.com/hissrv/hissrv"
SECTION = "net"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=72af4b99317226e34247eec89d8d38dc \
                    file://LICENSE-APACHE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# Pinned: a commit whose Cargo.lock is the one hissrv-crates.inc lists (a
# test checks it), so a build is reproducible and needs no network at parse
# time. A release bumps it; a local checkout instead: INHERIT += "externalsrc"
# and EXTERNALSRC:pn-hissrv = "/path/to/hissrv" in local.conf (cross/README.md).
SRC_URI = "git://github.com/hissrv/hissrv.git;protocol=https;branch=main"
SRCREV = "3f1c93c697535d72decd7893f92d7262413c91d8"
PV .= "+git"

# Supported releases: whinlatter (5.3) and later, where the git fetcher
# unpacks to ${UNPACKDIR}/${BB_GIT_DEFAULT_DESTSUFFIX} (S = "${WORKDIR}/git"
# is an error there). scarthgap (5.0 LTS): add S = "${WORKDIR}/git" in a
# bbappend.
S = "${UNPACKDIR}/${BB_GIT_DEFAULT_DESTSUFFIX}"

# Cargo.toml strips the release binary (for the static gateway builds); here
# the build system strips it and keeps the symbols for hissrv-dbg (insane's
# already-stripped check). panic = "abort" and the rest stay as tested.
export CARGO_PROFILE_RELEASE_STRIP = "false"

# The bundled SQLite with the feature flags of every build we test: cargo
# reads .cargo/config.toml from its working directory's ancestors, and the
# build runs in ${B}, outside ${S}.
do_compile:prepend() {
    export LIBSQLITE3_FLAGS="$(sed -n 's/^LIBSQLITE3_FLAGS = "\(.*\)"$/\1/p' ${S}/.cargo/config.toml)"
}

# cargo: offline build from the crates listed in hissrv-crates.inc (regenerate
# with cross/yocto/update-crates.py or `bitbake -c update_crates hissrv`).
# SQLite is compiled from the bundled amalgamation with the target's CC.
inherit cargo cargo-update-recipe-crates systemd
require ${BPN}-crates.inc

SYSTEMD_SERVICE:${PN} = "hissrv.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

do_install:append() {
    install -d ${D}${sysconfdir}/hissrv
    install -m 0644 ${S}/cross/debian/hissrv.yaml ${D}${sysconfdir}/hissrv/hissrv.yaml
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/cross/debian/hissrv.service ${D}${systemd_system_unitdir}/hissrv.service
    install -d ${D}${docdir}/${BPN}
    install -m 0644 ${S}/config/hissrv.yaml ${D}${docdir}/${BPN}/hissrv.yaml
    install -m 0644 ${S}/README.md ${D}${docdir}/${BPN}/README.md
}

CONFFILES:${PN} = "${sysconfdir}/hissrv/hissrv.yaml"
FILES:${PN} += "${systemd_system_unitdir}/hissrv.service"
