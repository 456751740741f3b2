//! "Did you mean …?" for misspelt names.

/// The candidate closest to `word`, when it is close enough to be a plausible typo: same word
/// ignoring case and `_`/`-` separators, or within an edit distance of about a third of its
/// length.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let normal = normalise(word);
    let budget = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        let distance = if normalise(candidate) == normal {
            0
        } else {
            edit_distance(word, candidate)
        };
        if distance <= budget && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

fn normalise(word: &str) -> String {
    word.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Levenshtein distance over chars (inputs are short field and roster names).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// `` `a`, `b`, `c` `` for help texts.
pub fn list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    names
        .into_iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_typos_and_case_slips_but_not_strangers() {
        let fields = [
            "includeRegex",
            "excludeRegex",
            "semver",
            "semverOnly",
            "latest",
        ];
        assert_eq!(closest("includeRegx", fields), Some("includeRegex"));
        assert_eq!(closest("include_regex", fields), Some("includeRegex"));
        assert_eq!(closest("semver_only", fields), Some("semverOnly"));
        assert_eq!(closest("lastest", fields), Some("latest"));
        assert_eq!(closest("platforms", fields), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
