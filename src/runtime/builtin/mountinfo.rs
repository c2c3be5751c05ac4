//! `/proc/self/mountinfo`: a pure parser plus one reader.
//!
//! Each line (proc(5)) is
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2) (3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//! ```
//!
//! mount id, parent id, `major:minor` of the filesystem's device, root of
//! the mount inside the filesystem, mount point, per-mount options, zero or
//! more optional fields ending at a lone `-`, filesystem type, mount source
//! and superblock options. The kernel escapes space, tab, newline and
//! backslash in paths (and in the source) as octal `\040`, `\011`, `\012`,
//! `\134`; paths are bytes, not UTF-8, so they are returned as [`PathBuf`]s.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

/// One mount, one line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Unique id of the mount.
    pub mount_id: u32,
    /// Id of the parent mount (itself for the root of the namespace).
    pub parent_id: u32,
    /// Major number of the filesystem's device (`st_dev`).
    pub major: u32,
    /// Minor number of the filesystem's device.
    pub minor: u32,
    /// The directory of the filesystem that is the root of this mount
    /// (`/` for a whole filesystem; a subdirectory for bind mounts).
    pub root: PathBuf,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw`/`ro`, `nosuid`, `noatime`, ...).
    pub mount_options: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`).
    pub optional: Vec<String>,
    /// Filesystem type (`ext4`, `fuse.sshfs`, ...).
    pub fstype: String,
    /// Mount source as given to mount(2) (`/dev/loop0`, `none`, ...), unescaped.
    pub source: String,
    /// Superblock options (`rw`/`ro`, `errors=remount-ro`, ...).
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// Whether the mount or its superblock is read-only. An ext4 with
    /// `errors=remount-ro` that hit an error shows `ro` in the superblock
    /// options only (older kernels) or `emergency_ro` (Linux 6.x keeps the
    /// superblock `rw` and refuses writes through that flag).
    pub fn read_only(&self) -> bool {
        self.mount_options.iter().any(|o| o == "ro")
            || self
                .super_options
                .iter()
                .any(|o| o == "ro" || o == "emergency_ro")
    }

    /// Whether the filesystem says it was shut down (ext4 `shutdown`, after
    /// `EXT4_IOC_SHUTDOWN` or a fatal error): every I/O fails.
    pub fn shut_down(&self) -> bool {
        self.super_options.iter().any(|o| o == "shutdown")
    }

    /// `(major, minor)` of the filesystem's device.
    pub fn dev(&self) -> (u32, u32) {
        (self.major, self.minor)
    }

    /// Whether this mount is `dir` or lies below it (path components, so
    /// `/srv/data2` is not under `/srv/data`).
    pub fn is_at_or_under(&self, dir: &Path) -> bool {
        self.mount_point.starts_with(dir)
    }
}

/// A line that is not mountinfo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mountinfo line {line}: {message}")]
pub struct ParseError {
    /// 1-based line number (1 for [`parse_line`]).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Undoes the kernel's octal escapes (`\040` space, `\011` tab, `\012`
/// newline, `\134` backslash, any other `\ooo`); a backslash not followed by
/// three octal digits stays as it is.
pub fn unescape(field: &str) -> Vec<u8> {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..=i + 3].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn path(field: &str) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

fn options(field: &str) -> Vec<String> {
    field
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Parses one line (without its newline).
pub fn parse_line(line: &str) -> Result<MountInfo, ParseError> {
    let err = |message: String| ParseError { line: 1, message };
    let fields: Vec<&str> = line.split(' ').collect();
    let sep = fields
        .iter()
        .position(|f| *f == "-")
        .ok_or_else(|| err("no ` - ` separator before the filesystem type".into()))?;
    if sep < 6 {
        return Err(err(format!(
            "{sep} fields before the separator, want at least 6"
        )));
    }
    if fields.len() < sep + 4 {
        return Err(err(
            "want fstype, source and super options after the separator".into(),
        ));
    }
    let num = |name: &str, s: &str| {
        s.parse::<u32>()
            .map_err(|_| err(format!("{name} `{s}` is not a number")))
    };
    let (major, minor) = fields[2]
        .split_once(':')
        .ok_or_else(|| err(format!("device `{}` is not major:minor", fields[2])))?;
    Ok(MountInfo {
        mount_id: num("mount id", fields[0])?,
        parent_id: num("parent id", fields[1])?,
        major: num("major", major)?,
        minor: num("minor", minor)?,
        root: path(fields[3]),
        mount_point: path(fields[4]),
        mount_options: options(fields[5]),
        optional: fields[6..sep]
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| s.to_string())
            .collect(),
        fstype: fields[sep + 1].to_string(),
        source: String::from_utf8_lossy(&unescape(fields[sep + 2])).into_owned(),
        // super options never contain spaces, but join anything left so a
        // future extra field does not make the line unreadable
        super_options: options(&fields[sep + 3..].join(" ")),
    })
}

/// Parses a whole mountinfo text, in the kernel's order (parents before
/// children; for stacked mounts on one directory, the topmost last).
pub fn parse(text: &str) -> Result<Vec<MountInfo>, ParseError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| parse_line(l).map_err(|e| ParseError { line: i + 1, ..e }))
        .collect()
}

/// Reading mountinfo failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read.
    #[error("/proc/self/mountinfo: {0}")]
    Io(#[from] std::io::Error),
    /// The file could not be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

/// Reads and parses `/proc/self/mountinfo` (this process's mount namespace).
pub fn read() -> Result<Vec<MountInfo>, ReadError> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?)?)
}

/// The mount visible at `dir`: the last (topmost) of the mounts whose mount
/// point is exactly `dir`.
pub fn top_at<'a>(mounts: &'a [MountInfo], dir: &Path) -> Option<&'a MountInfo> {
    mounts.iter().rev().find(|m| m.mount_point == dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from proc(5).
    const MAN: &str =
        "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue";

    #[test]
    fn man_page_example() {
        let m = parse_line(MAN).unwrap();
        assert_eq!(
            m,
            MountInfo {
                mount_id: 36,
                parent_id: 35,
                major: 98,
                minor: 0,
                root: "/mnt1".into(),
                mount_point: "/mnt2".into(),
                mount_options: vec!["rw".into(), "noatime".into()],
                optional: vec!["master:1".into()],
                fstype: "ext3".into(),
                source: "/dev/root".into(),
                super_options: vec!["rw".into(), "errors=continue".into()],
            }
        );
        assert!(!m.read_only());
    }

    /// Lines captured on real hosts: a Debian 12 systemd host (shared
    /// propagation, several optional fields), this test machine (none), a
    /// loop-mounted ext4 at a path with a space and a tab, a bind mount of
    /// a subdirectory, an ext4 remounted read-only by `errors=remount-ro`
    /// (older kernels: `ro` in the superblock options; Linux 6.18:
    /// `emergency_ro`), and an ext4 after `xfs_io -x -c shutdown`.
    const REAL: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
22 27 0:21 / /proc rw,relatime - proc proc rw
29 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
47 29 0:41 / /proc/sys/fs/binfmt_misc rw,relatime shared:26 propagate_from:1 - autofs systemd-1 rw,fd=29,pgrp=1,timeout=0,minproto=5,maxproto=5,direct,pipe_ino=12345
612 27 7:3 / /var/tmp/hapair-fs.Ab12/mnt\\040one\\011two rw,noatime - ext4 /dev/loop3 rw
613 27 7:3 /data /srv/bound rw,relatime - ext4 /dev/loop3 rw
700 29 253:2 / /srv/pg ro,relatime shared:300 - xfs /dev/mapper/vg-pg rw,attr2,inode64
701 29 147:0 / /srv/data rw,relatime shared:301 - ext4 /dev/drbd0 ro,errors=remount-ro
702 29 0:50 / /srv/back\\134slash rw - tmpfs my\\040tmp rw,size=1024k
46 27 7:3 / /var/tmp/hapair-bfs.FXBr8T/mnt rw,relatime - ext4 /dev/loop3 rw,abort,errors=remount-ro,emergency_ro
43 27 7:0 / /var/tmp/shutmnt rw,relatime - ext4 /dev/loop0 rw,shutdown
";

    #[test]
    fn real_lines() {
        let ms = parse(REAL).unwrap();
        assert_eq!(ms.len(), 11);
        assert_eq!(ms[0].mount_point, Path::new("/"));
        assert!(ms[0].optional.is_empty());
        assert_eq!(ms[0].super_options.len(), 5);
        assert_eq!(ms[2].optional, vec!["shared:1"]);
        assert_eq!(ms[3].optional, vec!["shared:26", "propagate_from:1"]);
        assert_eq!(ms[3].fstype, "autofs");
        assert_eq!(ms[3].source, "systemd-1");
        // escapes in the mount point
        assert_eq!(
            ms[4].mount_point,
            Path::new("/var/tmp/hapair-fs.Ab12/mnt one\ttwo")
        );
        assert_eq!(ms[4].dev(), (7, 3));
        assert_eq!(ms[4].mount_options, vec!["rw", "noatime"]);
        // bind mount: same device, root is the subdirectory
        assert_eq!(ms[5].root, Path::new("/data"));
        assert_eq!(ms[5].dev(), ms[4].dev());
        // read-only per mount, and read-only in the superblock only
        assert!(ms[6].read_only());
        assert!(ms[7].read_only());
        assert!(
            ms[7]
                .super_options
                .contains(&"errors=remount-ro".to_string())
        );
        assert!(!ms[4].read_only());
        // escapes in the source too
        assert_eq!(ms[8].mount_point, Path::new("/srv/back\\slash"));
        assert_eq!(ms[8].source, "my tmp");
        // Linux 6.18, ext4 errors=remount-ro after `mount -o remount,abort`
        assert!(ms[9].read_only());
        assert!(!ms[9].shut_down());
        assert!(ms[10].shut_down());
    }

    #[test]
    fn unescape_edge_cases() {
        assert_eq!(unescape(r"a\040b"), b"a b");
        assert_eq!(unescape(r"\012"), b"\n");
        assert_eq!(unescape(r"\134\040"), b"\\ ");
        // not an escape: too short, not octal, out of range
        assert_eq!(unescape(r"a\04"), b"a\\04");
        assert_eq!(unescape(r"\089"), b"\\089");
        assert_eq!(unescape(r"\777"), b"\\777");
        // non-UTF-8 bytes survive into the path
        assert_eq!(unescape(r"\377"), vec![0xff]);
        assert_eq!(path(r"/x\377").as_os_str().len(), 3);
    }

    #[test]
    fn bad_lines_name_the_problem() {
        let e = parse_line("36 35 98:0 /mnt1 /mnt2 rw ext3 /dev/root rw").unwrap_err();
        assert!(e.message.contains("separator"), "{e}");
        let e = parse_line("x 35 98:0 / /m rw - ext3 /dev/root rw").unwrap_err();
        assert!(e.message.contains("mount id"), "{e}");
        let e = parse_line("36 35 98 / /m rw - ext3 /dev/root rw").unwrap_err();
        assert!(e.message.contains("major:minor"), "{e}");
        let e = parse_line("36 35 98:0 / /m rw - ext3").unwrap_err();
        assert!(e.message.contains("after the separator"), "{e}");
        let e = parse("22 27 0:21 / /proc rw,relatime - proc proc rw\nbroken\n").unwrap_err();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn stacked_mounts_topmost_wins() {
        let text = "\
27 1 254:0 / / rw - ext4 /dev/vda rw
40 27 7:1 / /srv rw - ext4 /dev/loop1 rw
41 40 7:2 / /srv/sub rw - ext4 /dev/loop2 rw
42 27 7:5 / /srv rw - xfs /dev/loop5 rw
";
        let ms = parse(text).unwrap();
        assert_eq!(top_at(&ms, Path::new("/srv")).unwrap().source, "/dev/loop5");
        assert!(ms[2].is_at_or_under(Path::new("/srv")));
        assert!(!ms[2].is_at_or_under(Path::new("/sr")));
        assert!(top_at(&ms, Path::new("/nope")).is_none());
    }

    #[test]
    fn this_machine_parses() {
        let ms = read().unwrap();
        assert!(ms.iter().any(|m| m.mount_point == Path::new("/")));
    }
}
