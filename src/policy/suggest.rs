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

/// Edit distance over chars where swapping two neighbours counts as one edit (optimal string
/// alignment), since `lcoal` for `local` is the commonest slip.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut table = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        table[i * width] = i;
    }
    for (j, cell) in table.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (table[(i - 1) * width + j] + 1)
                .min(table[i * width + j - 1] + 1)
                .min(table[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(table[(i - 2) * width + j - 2] + 1);
            }
            table[i * width + j] = best;
        }
    }
    table[a.len() * width + b.len()]
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
        assert_eq!(edit_distance("lcoal", "local"), 1);
        assert_eq!(closest("lcoal", ["local", "backup"]), Some("local"));
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
