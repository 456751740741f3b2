//! `rewritePackageSources`: point the package manager at an internal mirror. Only the scheme
//! and host of each repository URL change (the mirror's base path is put in front of the
//! original path), so suites, components and `$releasever` variables keep working.

use super::Workspace;
use crate::build::error::BuildError;
use crate::build::rootfs::{Entry, EntryKind, Query};
use crate::config::PackageMirror;
use crate::policy::resolved::PackageManager;

const APT_LIST: &str = "/etc/apt/sources.list";
const APT_DIR: &str = "/etc/apt/sources.list.d";
const APK_REPOS: &str = "/etc/apk/repositories";
const YUM_DIR: &str = "/etc/yum.repos.d";
const LOOKED_FOR: &str = "/etc/apt/sources.list, /etc/apt/sources.list.d/*.list, /etc/apt/sources.list.d/*.sources, /etc/apk/repositories, /etc/yum.repos.d/*.repo";

#[derive(Clone, Copy)]
enum Format {
    AptOneLine,
    AptDeb822,
    Apk,
    Yum,
}

pub(super) fn ask(query: &mut Query) {
    query.path(APT_LIST);
    query.children(APT_DIR, ".list");
    query.children(APT_DIR, ".sources");
    query.path(APK_REPOS);
    query.children(YUM_DIR, ".repo");
}

pub(super) fn validate_mirror(
    image: &str,
    name: &str,
    mirror: &PackageMirror,
) -> Result<(), BuildError> {
    let fail = |detail: String| BuildError::Step {
        image: image.to_string(),
        step: "rewritePackageSources",
        detail: format!(
            "package mirror `{name}`: {detail}; fix `package_mirrors.{name}` in houba.toml"
        ),
    };
    let urls = [
        ("apt", &mirror.apt),
        ("apk", &mirror.apk),
        ("yum", &mirror.yum),
    ];
    if urls.iter().all(|(_, u)| u.is_none()) {
        return Err(fail("sets none of apt, apk, yum".to_string()));
    }
    for (manager, url) in urls {
        if let Some(url) = url
            && split_url(url).is_none()
        {
            return Err(fail(format!(
                "{manager} = `{url}` is not an http://, https:// or ftp:// URL with a host"
            )));
        }
    }
    Ok(())
}

/// The part of a mirror a step uses: the URLs of the named `managers`, or all of them when
/// none is named. Only this part is hashed into the recipe and used to rewrite, so a change
/// to another manager's URL does not rebuild the image.
pub(super) fn used_part(
    image: &str,
    name: &str,
    mirror: &PackageMirror,
    managers: &[PackageManager],
) -> Result<PackageMirror, BuildError> {
    if managers.is_empty() {
        return Ok(mirror.clone());
    }
    let mut used = PackageMirror::default();
    for manager in managers {
        let (from, to) = match manager {
            PackageManager::Apt => (&mirror.apt, &mut used.apt),
            PackageManager::Apk => (&mirror.apk, &mut used.apk),
            PackageManager::Yum => (&mirror.yum, &mut used.yum),
        };
        if from.is_none() {
            return Err(BuildError::Step {
                image: image.to_string(),
                step: "rewritePackageSources",
                detail: format!(
                    "package mirror `{name}` has no `{}` URL; set it in houba.toml or drop it from `managers`",
                    manager.as_str()
                ),
            });
        }
        *to = from.clone();
    }
    Ok(used)
}

/// Splits `scheme://host[:port]` from the rest (path, query), for network URLs only.
fn split_url(url: &str) -> Option<(&str, &str)> {
    let (scheme, after) = url.split_once("://")?;
    if !matches!(
        scheme.to_ascii_lowercase().as_str(),
        "http" | "https" | "ftp"
    ) {
        return None;
    }
    let host_len = after.find('/').unwrap_or(after.len());
    if host_len == 0 {
        return None;
    }
    let split = scheme.len() + 3 + host_len;
    Some((&url[..split], &url[split..]))
}

/// Rewrites every URL token of `text` onto `base`; separators are kept as they are.
fn rewrite_tokens(text: &str, base: &str) -> String {
    let base = base.trim_end_matches('/');
    let mut out = String::with_capacity(text.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        match split_url(token) {
            Some((_, rest)) => {
                out.push_str(base);
                out.push_str(rest);
            }
            None => out.push_str(token),
        }
        token.clear();
    };
    for c in text.chars() {
        if c.is_whitespace() || c == ',' {
            flush(&mut token, &mut out);
            out.push(c);
        } else {
            token.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

/// Byte offset where the URI field of a one-line apt entry starts
/// (`deb [options] uri suite components`).
fn apt_uri_offset(line: &str) -> Option<usize> {
    let trimmed = line.trim_start();
    let start = line.len() - trimmed.len();
    let kind_len = trimmed.find(char::is_whitespace)?;
    if !matches!(&trimmed[..kind_len], "deb" | "deb-src") {
        return None;
    }
    let mut pos = start + kind_len;
    pos += line[pos..].len() - line[pos..].trim_start().len();
    if line[pos..].starts_with('[') {
        pos += line[pos..].find(']')? + 1;
        pos += line[pos..].len() - line[pos..].trim_start().len();
    }
    Some(pos)
}

fn rewrite(format: Format, text: &str, base: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    let mut in_multiline_field = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let comment = trimmed.starts_with('#');
        let continuation = !trimmed.is_empty() && trimmed.len() != line.len();
        match format {
            Format::AptOneLine => match apt_uri_offset(line).filter(|_| !comment) {
                Some(at) => {
                    let end = line[at..]
                        .find(char::is_whitespace)
                        .map_or(line.len(), |e| at + e);
                    out.push_str(&line[..at]);
                    out.push_str(&rewrite_tokens(&line[at..end], base));
                    out.push_str(&line[end..]);
                }
                None => out.push_str(line),
            },
            Format::Apk => {
                if comment {
                    out.push_str(line);
                } else {
                    out.push_str(&rewrite_tokens(line, base));
                }
            }
            Format::AptDeb822 | Format::Yum => {
                let (separator, fields): (char, &[&str]) = match format {
                    Format::AptDeb822 => (':', &["uris"]),
                    _ => ('=', &["baseurl", "mirrorlist"]),
                };
                if comment {
                    out.push_str(line);
                    continue;
                }
                if continuation && in_multiline_field {
                    out.push_str(&rewrite_tokens(line, base));
                    continue;
                }
                in_multiline_field = false;
                match line.split_once(separator) {
                    Some((key, value))
                        if !continuation
                            && fields.contains(&key.trim().to_ascii_lowercase().as_str()) =>
                    {
                        in_multiline_field = true;
                        out.push_str(key);
                        out.push(separator);
                        out.push_str(&rewrite_tokens(value, base));
                    }
                    _ => out.push_str(line),
                }
            }
        }
    }
    out
}

pub(super) fn apply(ws: &mut Workspace<'_>, mirror: &PackageMirror) -> Result<(), String> {
    let mut files = Vec::new();
    if let Some(f) = ws.file(APT_LIST)? {
        files.push((Format::AptOneLine, f));
    }
    for f in ws.children(APT_DIR, ".list")? {
        files.push((Format::AptOneLine, f));
    }
    for f in ws.children(APT_DIR, ".sources")? {
        files.push((Format::AptDeb822, f));
    }
    if let Some(f) = ws.file(APK_REPOS)? {
        files.push((Format::Apk, f));
    }
    for f in ws.children(YUM_DIR, ".repo")? {
        files.push((Format::Yum, f));
    }
    let mut changed = 0;
    let mut unserved = Vec::new();
    for (format, file) in files {
        let (manager, base) = match format {
            Format::AptOneLine | Format::AptDeb822 => ("apt", &mirror.apt),
            Format::Apk => ("apk", &mirror.apk),
            Format::Yum => ("yum", &mirror.yum),
        };
        let Some(base) = base else {
            unserved.push(format!("/{} (the mirror has no {manager} URL)", file.real));
            continue;
        };
        let text = std::str::from_utf8(&file.data).map_err(|_| {
            format!(
                "/{} is not UTF-8 text; fix or remove it in the base image",
                file.real
            )
        })?;
        let new = rewrite(format, text, base);
        if new != text {
            changed += 1;
            ws.put(
                file.real,
                Entry {
                    kind: EntryKind::File(new.into_bytes()),
                    ..file.entry
                },
            );
        }
    }
    if changed == 0 {
        let found = if unserved.is_empty() {
            "none holds a repository URL to rewrite".to_string()
        } else {
            format!("found only {}", unserved.join(", "))
        };
        return Err(format!(
            "no package sources to rewrite (looked for {LOOKED_FOR}; {found}); drop rewritePackageSources from this image's transforms or give the mirror a URL for its package manager"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIRROR: &str = "https://mirror.example.test/proxy/";

    #[test]
    fn one_line_apt_keeps_options_suites_and_comments() {
        let text = "# deb http://deb.debian.org/debian bookworm main\n\
                    deb [arch=amd64 signed-by=/k.gpg] http://deb.debian.org/debian bookworm main\n\
                    deb-src\thttp://security.debian.org/debian-security bookworm-security main\n";
        assert_eq!(
            rewrite(Format::AptOneLine, text, MIRROR),
            "# deb http://deb.debian.org/debian bookworm main\n\
             deb [arch=amd64 signed-by=/k.gpg] https://mirror.example.test/proxy/debian bookworm main\n\
             deb-src\thttps://mirror.example.test/proxy/debian-security bookworm-security main\n"
        );
    }

    #[test]
    fn deb822_rewrites_every_uri_of_the_field_only() {
        let text = "Types: deb\nURIs: http://deb.debian.org/debian http://a.test/b\nSuites: bookworm\nSigned-By: /usr/share/keyrings/x.gpg\n";
        assert_eq!(
            rewrite(Format::AptDeb822, text, MIRROR),
            "Types: deb\nURIs: https://mirror.example.test/proxy/debian https://mirror.example.test/proxy/b\nSuites: bookworm\nSigned-By: /usr/share/keyrings/x.gpg\n"
        );
    }

    #[test]
    fn apk_and_yum_keep_tags_variables_and_other_keys() {
        let apk = "https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n@edge http://dl-cdn.alpinelinux.org/alpine/edge/testing\n";
        assert_eq!(
            rewrite(Format::Apk, apk, MIRROR),
            "https://mirror.example.test/proxy/alpine/v3.20/main\n@edge https://mirror.example.test/proxy/alpine/edge/testing\n"
        );
        let yum = "[ubi]\nname=UBI $releasever\nbaseurl = https://cdn.redhat.com/ubi9/$basearch/os\n  http://second.test/os\ngpgkey=https://cdn.redhat.com/key\nmirrorlist=http://m.test/list?r=$releasever\n";
        assert_eq!(
            rewrite(Format::Yum, yum, MIRROR),
            "[ubi]\nname=UBI $releasever\nbaseurl = https://mirror.example.test/proxy/ubi9/$basearch/os\n  https://mirror.example.test/proxy/os\ngpgkey=https://cdn.redhat.com/key\nmirrorlist=https://mirror.example.test/proxy/list?r=$releasever\n"
        );
    }

    #[test]
    fn mirrors_without_a_usable_url_are_rejected() {
        let none = PackageMirror::default();
        assert!(validate_mirror("img", "m", &none).is_err());
        let bad = PackageMirror {
            apt: Some("mirror.test/debian".into()),
            ..PackageMirror::default()
        };
        let err = validate_mirror("img", "m", &bad).unwrap_err().to_string();
        assert!(err.contains("apt = `mirror.test/debian`"), "{err}");
    }
}
