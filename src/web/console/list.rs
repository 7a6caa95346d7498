//! What every console list shares: the query (page, search and the list's own filters, parsed
//! once), the pager, the empty state, and the [`ListPage`] that holds them with the rows.

use std::collections::HashMap;
use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The longest search term kept.
const MAX_SEARCH_CHARS: usize = 200;
/// The highest page number (a bigger one is a typo or a probe).
const MAX_PAGE: i64 = 100_000;

/// A list's own filters beside page and search, read from the query string. Junk values mean
/// "no filter", never an error: a list link that went stale still opens.
pub(crate) trait Filters: Default {
    /// Whether the list has filters beside the search (then "no match" speaks of filters).
    const BESIDE_SEARCH: bool = true;
    /// Reads the filters from the query's parameters.
    fn parse(params: &HashMap<String, String>) -> Self;
    /// The active filters as query pairs, for links that keep them.
    fn pairs(&self) -> Vec<(&'static str, String)>;
}

/// A list with nothing to filter but the search.
impl Filters for () {
    const BESIDE_SEARCH: bool = false;
    fn parse(_: &HashMap<String, String>) -> Self {}
    fn pairs(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// `?page=&q=` and the list's filters `F`, as an extractor. NUL bytes never get this far (the
/// edge refuses them).
pub(crate) struct ListQuery<F> {
    /// From 1.
    pub page: i64,
    /// The search term, trimmed and capped; `None` when blank.
    pub q: Option<String>,
    pub filters: F,
}

impl<S: Send + Sync, F: Filters> FromRequestParts<S> for ListQuery<F> {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let params: HashMap<String, String> =
            url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        Ok(Self::from_params(&params))
    }
}

impl<F: Filters> ListQuery<F> {
    fn from_params(params: &HashMap<String, String>) -> Self {
        Self {
            page: page_number(params.get("page").map(String::as_str)),
            q: params
                .get("q")
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| s.chars().take(MAX_SEARCH_CHARS).collect()),
            filters: F::parse(params),
        }
    }

    /// The rows to skip for this page.
    pub fn offset(&self, per_page: i64) -> i64 {
        (self.page - 1) * per_page
    }

    /// Whether a search or filter narrows the list.
    pub fn filtered(&self) -> bool {
        self.q.is_some() || !self.filters.pairs().is_empty()
    }
}

/// One page of a console list, as every list template reads it (`list.rows`, `list.pager`,
/// `list.empty`, and the search partial's `list.base` and `list.search_text()`).
pub(crate) struct ListPage<R, F = ()> {
    pub rows: Vec<R>,
    pub query: ListQuery<F>,
    /// The list's address: the search form's action, and where "Clear filters" leads.
    pub base: String,
    pub pager: Pager,
    /// Set when the page has no rows.
    pub empty: Option<Empty>,
}

impl<R, F: Filters> ListPage<R, F> {
    /// The page of `rows` (of `total`, `per_page` a page) that `query` asked of the list at
    /// `base`. Without rows it says why: no `noun` (plural) match (with a link that clears the
    /// filters), past the last page, or `first` — the list has nothing at all yet, with its one
    /// call to action.
    pub fn new(
        query: ListQuery<F>,
        base: impl Into<String>,
        per_page: i64,
        rows: Vec<R>,
        total: i64,
        noun: &str,
        first: Empty,
    ) -> Self {
        let base = base.into();
        let mut params = query.filters.pairs();
        if let Some(q) = &query.q {
            params.push(("q", q.clone()));
        }
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let pager = Pager::new(&base, &params, query.page, per_page, rows.len(), total);
        let empty = rows.is_empty().then(|| {
            if query.filtered() {
                let title = match &query.q {
                    Some(q) if !F::BESIDE_SEARCH => format!("No {noun} match “{q}”"),
                    _ => format!("No {noun} match these filters"),
                };
                Empty {
                    title,
                    text: "Try another search term or filter.".into(),
                    action: Some(("Clear filters", base.clone())),
                    first_run: false,
                }
            } else if total > 0 {
                Empty {
                    title: "Nothing on this page".into(),
                    text: String::new(),
                    action: Some(("Back to the first page", base.clone())),
                    first_run: false,
                }
            } else {
                first
            }
        });
        Self {
            rows,
            query,
            base,
            pager,
            empty,
        }
    }

    /// The search term as the search box shows it.
    pub fn search_text(&self) -> &str {
        self.query.q.as_deref().unwrap_or_default()
    }

    /// Whether a search or filter narrows the list.
    pub fn filtered(&self) -> bool {
        self.query.filtered()
    }

    /// Whether the list has nothing at all yet: the page shows no filters or other buttons then.
    pub fn first_run(&self) -> bool {
        self.empty.as_ref().is_some_and(|e| e.first_run)
    }
}

/// What an empty list says instead of a table (`templates/console/_empty.html`).
pub(crate) struct Empty {
    pub title: String,
    pub text: String,
    /// The one call to action: label and address.
    pub action: Option<(&'static str, String)>,
    /// The list has nothing at all yet: the page shows no filters or other buttons either.
    pub first_run: bool,
}

impl Empty {
    /// The state of a list that has nothing yet, with its one call to action.
    pub fn first_run(
        title: impl Into<String>,
        text: impl Into<String>,
        action: Option<(&'static str, String)>,
    ) -> Self {
        Self {
            title: title.into(),
            text: text.into(),
            action,
            first_run: true,
        }
    }
}

/// Page numbers from `?page=`, tolerant of junk (a bad number means the first page).
fn page_number(raw: Option<&str>) -> i64 {
    raw.and_then(|p| p.trim().parse::<i64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1)
        .min(MAX_PAGE)
}

/// `base` with the query `params` (empty values left out).
pub(crate) fn link(base: &str, params: &[(&str, String)]) -> String {
    let mut url = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params.iter().filter(|(_, v)| !v.is_empty()) {
        url.append_pair(k, v);
    }
    let query = url.finish();
    if query.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{query}")
    }
}

/// "Showing 1–25 of 73" with previous/next links that keep the filters.
pub(crate) struct Pager {
    pub from: i64,
    pub to: i64,
    pub total: i64,
    pub prev: Option<String>,
    pub next: Option<String>,
}

impl Pager {
    /// `params` are the active filters (empty values are left out of the links).
    pub fn new(
        base: &str,
        params: &[(&str, &str)],
        page: i64,
        per_page: i64,
        shown: usize,
        total: i64,
    ) -> Self {
        let link = |page: i64| {
            let mut params: Vec<(&str, String)> =
                params.iter().map(|(k, v)| (*k, v.to_string())).collect();
            if page > 1 {
                params.push(("page", page.to_string()));
            }
            link(base, &params)
        };
        let offset = (page - 1) * per_page;
        let shown = shown as i64;
        Self {
            from: if shown == 0 { 0 } else { offset + 1 },
            to: offset + shown,
            total,
            prev: (page > 1).then(|| link(page - 1)),
            next: (offset + shown < total).then(|| link(page + 1)),
        }
    }

    /// Whether there is more than one page (or the visitor is past the last one).
    pub fn needed(&self) -> bool {
        self.prev.is_some() || self.next.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pager_keeps_filters_and_counts() {
        let p = Pager::new("/x", &[("status", "pending"), ("q", "a b")], 2, 25, 25, 73);
        assert_eq!((p.from, p.to, p.total), (26, 50, 73));
        assert_eq!(p.prev.as_deref(), Some("/x?status=pending&q=a+b"));
        assert_eq!(p.next.as_deref(), Some("/x?status=pending&q=a+b&page=3"));
        let last = Pager::new("/x", &[("q", "")], 3, 25, 23, 73);
        assert_eq!((last.from, last.to), (51, 73));
        assert!(last.next.is_none());
        assert_eq!(last.prev.as_deref(), Some("/x?page=2"));
        let none = Pager::new("/x", &[], 1, 25, 0, 0);
        assert_eq!((none.from, none.to), (0, 0));
        assert!(!none.needed());
    }

    #[test]
    fn junk_page_numbers_mean_the_first_page() {
        assert_eq!(page_number(None), 1);
        assert_eq!(page_number(Some("abc")), 1);
        assert_eq!(page_number(Some("-3")), 1);
        assert_eq!(page_number(Some("4")), 4);
    }

    #[test]
    fn the_query_trims_the_search_and_says_which_empty_state_applies() {
        let params = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let first = || Empty::first_run("Nothing yet", "", None);
        let query =
            |pairs: &[(&str, &str)]| -> ListQuery<()> { ListQuery::from_params(&params(pairs)) };
        let blank = query(&[("q", "  "), ("page", "x")]);
        assert_eq!((blank.page, blank.q.as_deref()), (1, None));
        let page = ListPage::<(), ()>::new(blank, "/x", 25, vec![], 0, "rows", first());
        assert!(page.first_run());
        let blank = query(&[("page", "2")]);
        let page = ListPage::<(), ()>::new(blank, "/x", 25, vec![], 3, "rows", first());
        assert_eq!(page.empty.unwrap().title, "Nothing on this page");
        let searched = || query(&[("q", " ab ")]);
        let page = ListPage::<(), ()>::new(searched(), "/x", 25, vec![], 0, "rows", first());
        assert_eq!(page.search_text(), "ab");
        let empty = page.empty.unwrap();
        assert_eq!(empty.title, "No rows match “ab”");
        assert_eq!(empty.action.unwrap().1, "/x");
        assert_eq!(page.pager.total, 0);
        let page = ListPage::new(searched(), "/x", 25, vec![()], 1, "rows", first());
        assert!(page.empty.is_none() && !page.first_run());
    }
}
