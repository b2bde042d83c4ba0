//! The fleet registry's things and static thing groups, with group membership:
//! CreateThing, AddThingToThingGroup and their siblings.

use std::collections::BTreeMap;
use std::fmt;

use palisade_model::{
    AddThingToThingGroupRequest, AddThingToThingGroupResponse, AttributePayload,
    CreateThingGroupRequest, CreateThingGroupResponse, CreateThingRequest, CreateThingResponse,
    DeleteThingGroupRequest, DeleteThingGroupResponse, DeleteThingRequest, DeleteThingResponse,
    DescribeThingGroupRequest, DescribeThingGroupResponse, DescribeThingRequest,
    DescribeThingResponse, GroupNameAndArn, ListThingGroupsForThingRequest,
    ListThingGroupsForThingResponse, ListThingGroupsRequest, ListThingGroupsResponse,
    ListThingsInThingGroupRequest, ListThingsInThingGroupResponse, ListThingsRequest,
    ListThingsResponse, RemoveThingFromThingGroupRequest, RemoveThingFromThingGroupResponse,
    ThingAttribute, ThingGroupMetadata, ThingGroupProperties, Timestamp, UpdateThingGroupRequest,
    UpdateThingGroupResponse, UpdateThingGroupsForThingRequest, UpdateThingGroupsForThingResponse,
    UpdateThingRequest, UpdateThingResponse,
};
use palisade_store::{
    AttributeChange, AttributeFilter, Attributes, GroupRef, GroupSelection, StoreError,
    ThingFilter, ThingGroupRecord, ThingGroupUpdate, ThingRecord, ThingRefusal, ThingUpdate,
    ValueMatch,
};

use crate::arn::ResourceArn;
use crate::required;
use crate::tagging::checked_tags;
use crate::{paging, Engine, EngineError, EngineResult, Scope};

const THINGS_LISTING: &str = "things";
const GROUPS_LISTING: &str = "thing-groups";
const GROUP_THINGS_LISTING: &str = "things-in-thing-group";
const THING_GROUPS_LISTING: &str = "thing-groups-for-thing";

/// AWS documents no default page size for the registry listings (the model allows up
/// to 250); 25 is what Palisade's other listings use.
const DEFAULT_PAGE: usize = 25;

/// AWS quotas: attributes per thing and per thing group, thing groups a thing can be
/// in, and levels of a thing group hierarchy.
const MAX_ATTRIBUTES: usize = 50;
pub(crate) const MAX_GROUPS_PER_THING: usize = 10;
pub(crate) const MAX_HIERARCHY_DEPTH: usize = 7;

pub(crate) fn thing_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:thing/{name}",
        scope.region, scope.account_id
    )
}

pub(crate) fn thing_group_arn(scope: &Scope, name: &str) -> String {
    format!(
        "arn:aws:iot:{}:{}:thinggroup/{name}",
        scope.region, scope.account_id
    )
}

pub(crate) fn thing_not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!("Thing {name} cannot be found."))
}

fn group_not_found(name: &str) -> EngineError {
    EngineError::NotFound(format!("Thing group {name} cannot be found."))
}

/// What a refusal is about, for its message.
#[derive(Clone, Copy)]
pub(crate) enum Subject<'a> {
    Thing(&'a str),
    Group(&'a str),
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Thing(name) => write!(f, "thing {name}"),
            Subject::Group(name) => write!(f, "thing group {name}"),
        }
    }
}

/// The AWS error for a store refusal about `subject`.
pub(crate) fn refused(
    refusal: ThingRefusal,
    subject: Subject<'_>,
    expected: Option<i64>,
) -> EngineError {
    match refusal {
        ThingRefusal::ThingNotFound(name) => thing_not_found(&name),
        ThingRefusal::GroupNotFound(name) => group_not_found(&name),
        ThingRefusal::VersionMismatch { current } => EngineError::VersionConflict(format!(
            "The version of {subject} is {current}, not the expected version{}.",
            expected.map(|v| format!(" {v}")).unwrap_or_default()
        )),
        ThingRefusal::TooManyAttributes { limit } => EngineError::InvalidRequest(format!(
            "The {subject} would have more than {limit} attributes; at most {limit} are allowed."
        )),
        ThingRefusal::TooDeep { limit } => EngineError::InvalidRequest(format!(
            "A thing group hierarchy can be at most {limit} levels deep; {subject} would be deeper."
        )),
        ThingRefusal::HasChildGroups => {
            // AWS's own text, spacing included.
            let name = match subject {
                Subject::Thing(name) | Subject::Group(name) => name,
            };
            EngineError::InvalidRequest(format!(
                "Cannot delete thing group : {name} when it has child groups"
            ))
        }
        ThingRefusal::HasPrincipals => {
            // AWS's own text.
            let name = match subject {
                Subject::Thing(name) | Subject::Group(name) => name,
            };
            EngineError::InvalidRequest(format!(
                "Cannot delete. Thing {name} is still attached to one or more principals"
            ))
        }
        ThingRefusal::TooManyGroups { limit } => EngineError::InvalidRequest(format!(
            "The {subject} would be in more than {limit} thing groups; a thing can be in at most {limit}."
        )),
        ThingRefusal::SameHierarchy {
            member_of,
            requested,
        } => EngineError::InvalidRequest(format!(
            "The {subject} cannot be added to thing group {requested}: it is already in thing \
             group {member_of}, which is in the same hierarchy, and a thing can be in only one \
             group of a hierarchy."
        )),
    }
}

/// AWS never stores an attribute with an empty value: an empty value means "no such
/// attribute" (and, in a merge, "remove it").
fn stored_attributes(attributes: BTreeMap<String, String>) -> Attributes {
    attributes
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

fn check_attribute_count(attributes: &Attributes, owner: Subject<'_>) -> EngineResult<()> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(refused(
            ThingRefusal::TooManyAttributes {
                limit: MAX_ATTRIBUTES,
            },
            owner,
            None,
        ));
    }
    Ok(())
}

/// The attributes a create sets (`merge` means nothing on creation).
pub(crate) fn initial_attributes(
    payload: Option<AttributePayload>,
    owner: Subject<'_>,
) -> EngineResult<Attributes> {
    let attributes = stored_attributes(payload.and_then(|p| p.attributes).unwrap_or_default());
    check_attribute_count(&attributes, owner)?;
    Ok(attributes)
}

/// The change an update's payload asks for; none without an `attributes` member.
fn attribute_change(
    payload: Option<AttributePayload>,
    owner: Subject<'_>,
) -> EngineResult<Option<AttributeChange>> {
    let Some(AttributePayload {
        attributes: Some(attributes),
        merge,
    }) = payload
    else {
        return Ok(None);
    };
    if merge == Some(true) {
        // The limit applies to the merged result, which only the store can see.
        let changes = attributes
            .into_iter()
            .map(|(k, v)| (k, (!v.is_empty()).then_some(v)))
            .collect();
        return Ok(Some(AttributeChange::Merge(changes)));
    }
    let attributes = stored_attributes(attributes);
    check_attribute_count(&attributes, owner)?;
    Ok(Some(AttributeChange::Replace(attributes)))
}

/// The filter half of a page token's MAC: each part length-prefixed, so no two
/// different filters encode alike.
fn filter_key(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| format!("{}:{p}", p.len()))
        .collect::<Vec<_>>()
        .join(",")
}

fn flag(value: bool) -> &'static str {
    if value {
        "1"
    } else {
        "0"
    }
}

/// Which of the two resource kinds a name-or-ARN pair names.
#[derive(Clone, Copy)]
enum Kind {
    Thing,
    Group,
}

impl Kind {
    fn arn(self, scope: &Scope, name: &str) -> String {
        match self {
            Kind::Thing => thing_arn(scope, name),
            Kind::Group => thing_group_arn(scope, name),
        }
    }

    fn arn_type(self) -> &'static str {
        match self {
            Kind::Thing => "thing",
            Kind::Group => "thinggroup",
        }
    }

    fn members(self) -> (&'static str, &'static str) {
        match self {
            Kind::Thing => ("thingName", "thingArn"),
            Kind::Group => ("thingGroupName", "thingGroupArn"),
        }
    }

    fn not_found(self, name: &str) -> EngineError {
        match self {
            Kind::Thing => thing_not_found(name),
            Kind::Group => group_not_found(name),
        }
    }
}

/// The name a request means by its name member, its ARN member, or both (which must
/// agree). An ARN of another account or region names nothing the caller can see.
fn resolve(
    scope: &Scope,
    kind: Kind,
    name: Option<String>,
    arn: Option<String>,
) -> EngineResult<String> {
    let (name_member, arn_member) = kind.members();
    let from_arn = match &arn {
        None => None,
        Some(arn) => {
            let parsed = ResourceArn::parse(arn)
                .filter(|p| p.resource_type == kind.arn_type())
                .ok_or_else(|| {
                    EngineError::InvalidRequest(format!(
                        "{arn_member} '{arn}' is not a valid {} ARN.",
                        match kind {
                            Kind::Thing => "thing",
                            Kind::Group => "thing group",
                        }
                    ))
                })?;
            let id = parsed.resource_id;
            if !parsed.belongs_to(scope) || kind.arn(scope, id) != *arn {
                return Err(kind.not_found(id));
            }
            Some(id.to_owned())
        }
    };
    match (name, from_arn) {
        (Some(name), Some(from_arn)) if name != from_arn => Err(EngineError::InvalidRequest(
            format!("{name_member} '{name}' and {arn_member} name different resources."),
        )),
        (Some(name), _) => Ok(name),
        (None, Some(from_arn)) => Ok(from_arn),
        (None, None) => Err(EngineError::InvalidRequest(format!(
            "Either {name_member} or {arn_member} is required."
        ))),
    }
}

/// Request order, without repeats.
pub(crate) fn distinct(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

fn name_and_arn(g: GroupRef) -> GroupNameAndArn {
    GroupNameAndArn {
        group_arn: Some(g.arn),
        group_name: Some(g.name),
    }
}

/// Whether a create asks for exactly what `existing` is (CreateThing and
/// CreateThingGroup are idempotent).
fn same_thing(existing: &ThingRecord, wanted: &ThingRecord) -> bool {
    existing.same_configuration(wanted)
}

fn same_group(existing: &ThingGroupRecord, wanted: &ThingGroupRecord) -> bool {
    existing.same_configuration(wanted)
}

/// What a list request asks of paging.
struct PageRequest {
    next_token: Option<String>,
    max_results: Option<i32>,
}

/// A page of a thing listing with its next token.
struct Page<T> {
    items: Vec<T>,
    next_token: Option<String>,
}

impl Engine {
    /// Whether `arn` names an existing thing group of the caller (for tagging).
    pub(crate) async fn thing_group_arn_exists(
        &self,
        scope: &Scope,
        id: &str,
        arn: &str,
    ) -> EngineResult<bool> {
        let found = self.store().get_thing_group(scope, id).await?;
        Ok(found.is_some_and(|view| view.group.arn == arn))
    }

    /// Opens `token` (if any) for `listing` with `filter`, lists, and issues the next
    /// token from the last item's key.
    async fn page<T, F, Fut>(
        &self,
        scope: &Scope,
        listing: &str,
        filter: &str,
        request: PageRequest,
        key: impl Fn(&T) -> &str,
        fetch: F,
    ) -> EngineResult<Page<T>>
    where
        F: FnOnce(Option<String>, usize) -> Fut,
        Fut: std::future::Future<Output = Result<Vec<T>, StoreError>>,
    {
        let tokens = &self.inner.tokens;
        let after = match &request.next_token {
            Some(t) if !t.is_empty() => Some(tokens.open(scope, listing, filter, t)?),
            _ => None,
        };
        let size = paging::page_size(request.max_results, DEFAULT_PAGE);
        let page = paging::Page::fetch(size, |n| fetch(after, n)).await?;
        let next_token = page.next(|last| tokens.issue(scope, listing, filter, key(last)));
        Ok(Page {
            items: page.items,
            next_token,
        })
    }

    pub async fn create_thing(
        &self,
        scope: &Scope,
        input: CreateThingRequest,
    ) -> EngineResult<CreateThingResponse> {
        let name = required(input.thing_name, "thingName")?;
        let attributes = initial_attributes(input.attribute_payload, Subject::Thing(&name))?;
        // Palisade has no thing types or billing groups, so any named one does not exist.
        if let Some(t) = input.thing_type_name {
            return Err(EngineError::NotFound(format!(
                "Thing type {t} cannot be found."
            )));
        }
        if let Some(b) = input.billing_group_name {
            return Err(EngineError::NotFound(format!(
                "Billing group {b} cannot be found."
            )));
        }
        let now = self.now_ms();
        let record = ThingRecord {
            arn: thing_arn(scope, &name),
            id: self.inner.ids.uuid(),
            name,
            thing_type_name: None,
            billing_group_name: None,
            attributes,
            version: 1,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let created = match self.store().create_thing(scope, &record).await {
            Ok(()) => record,
            Err(StoreError::AlreadyExists) => {
                match self.store().get_thing(scope, &record.name).await? {
                    Some(existing) if same_thing(&existing, &record) => existing,
                    existing => {
                        return Err(EngineError::AlreadyExists {
                            message: format!(
                                "Thing {} already exists with a different configuration.",
                                record.name
                            ),
                            resource_id: existing.map(|e| e.id),
                            resource_arn: Some(record.arn),
                        })
                    }
                }
            }
            Err(e) => return Err(e.into()),
        };
        Ok(CreateThingResponse {
            thing_arn: Some(created.arn),
            thing_id: Some(created.id),
            thing_name: Some(created.name),
        })
    }

    pub async fn describe_thing(
        &self,
        scope: &Scope,
        input: DescribeThingRequest,
    ) -> EngineResult<DescribeThingResponse> {
        let name = required(input.thing_name, "thingName")?;
        let thing = self
            .store()
            .get_thing(scope, &name)
            .await?
            .ok_or_else(|| thing_not_found(&name))?;
        Ok(DescribeThingResponse {
            attributes: Some(thing.attributes),
            billing_group_name: thing.billing_group_name,
            default_client_id: Some(thing.name.clone()),
            thing_arn: Some(thing.arn),
            thing_id: Some(thing.id),
            thing_name: Some(thing.name),
            thing_type_name: thing.thing_type_name,
            version: Some(thing.version),
        })
    }

    pub async fn update_thing(
        &self,
        scope: &Scope,
        input: UpdateThingRequest,
    ) -> EngineResult<UpdateThingResponse> {
        let name = required(input.thing_name, "thingName")?;
        let remove_thing_type = input.remove_thing_type == Some(true);
        if input.thing_type_name.is_some() && remove_thing_type {
            return Err(EngineError::InvalidRequest(
                "thingTypeName cannot be given together with removeThingType set to true.".into(),
            ));
        }
        let attributes = attribute_change(input.attribute_payload, Subject::Thing(&name))?;
        if let Some(t) = input.thing_type_name {
            if self.store().get_thing(scope, &name).await?.is_none() {
                return Err(thing_not_found(&name));
            }
            return Err(EngineError::NotFound(format!(
                "Thing type {t} cannot be found."
            )));
        }
        let update = ThingUpdate {
            attributes,
            remove_thing_type,
            expected_version: input.expected_version,
            max_attributes: MAX_ATTRIBUTES,
            updated_at_ms: self.now_ms(),
        };
        match self.store().update_thing(scope, &name, &update).await? {
            Ok(_) => Ok(UpdateThingResponse {}),
            Err(r) => Err(refused(r, Subject::Thing(&name), input.expected_version)),
        }
    }

    pub async fn delete_thing(
        &self,
        scope: &Scope,
        input: DeleteThingRequest,
    ) -> EngineResult<DeleteThingResponse> {
        let name = required(input.thing_name, "thingName")?;
        // AWS documents that deleting a thing that does not exist succeeds.
        match self
            .store()
            .delete_thing(scope, &name, input.expected_version)
            .await?
        {
            Ok(_) => Ok(DeleteThingResponse {}),
            Err(r) => Err(refused(r, Subject::Thing(&name), input.expected_version)),
        }
    }

    pub async fn list_things(
        &self,
        scope: &Scope,
        input: ListThingsRequest,
    ) -> EngineResult<ListThingsResponse> {
        let prefix = input.use_prefix_attribute_value == Some(true);
        let attribute = match (input.attribute_name, input.attribute_value) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(EngineError::InvalidRequest(
                    "attributeValue can only be given together with attributeName.".into(),
                ))
            }
            // A name alone lists the things that have the attribute, whatever its value.
            (Some(name), None) => Some(AttributeFilter {
                name,
                value: ValueMatch::Any,
            }),
            (Some(name), Some(value)) => Some(AttributeFilter {
                name,
                value: if prefix {
                    ValueMatch::Prefix(value)
                } else {
                    ValueMatch::Exact(value)
                },
            }),
        };
        let filter = ThingFilter {
            thing_type_name: input.thing_type_name,
            attribute,
        };
        let (attr_name, match_kind, attr_value) = match &filter.attribute {
            None => ("", "", ""),
            Some(a) => match &a.value {
                ValueMatch::Any => (a.name.as_str(), "any", ""),
                ValueMatch::Exact(v) => (a.name.as_str(), "exact", v.as_str()),
                ValueMatch::Prefix(v) => (a.name.as_str(), "prefix", v.as_str()),
            },
        };
        let key = filter_key(&[
            filter.thing_type_name.as_deref().unwrap_or(""),
            attr_name,
            match_kind,
            attr_value,
        ]);
        let page = self
            .page(
                scope,
                THINGS_LISTING,
                &key,
                PageRequest {
                    next_token: input.next_token,
                    max_results: input.max_results,
                },
                |t: &ThingRecord| t.name.as_str(),
                |after, limit| async move {
                    self.store()
                        .list_things(scope, &filter, after.as_deref(), limit)
                        .await
                },
            )
            .await?;
        Ok(ListThingsResponse {
            things: Some(
                page.items
                    .into_iter()
                    .map(|t| ThingAttribute {
                        attributes: Some(t.attributes),
                        thing_arn: Some(t.arn),
                        thing_name: Some(t.name),
                        thing_type_name: t.thing_type_name,
                        version: Some(t.version),
                    })
                    .collect(),
            ),
            next_token: page.next_token,
        })
    }

    pub async fn create_thing_group(
        &self,
        scope: &Scope,
        input: CreateThingGroupRequest,
    ) -> EngineResult<CreateThingGroupResponse> {
        let name = required(input.thing_group_name, "thingGroupName")?;
        let properties = input.thing_group_properties.unwrap_or_default();
        let attributes = initial_attributes(properties.attribute_payload, Subject::Group(&name))?;
        // The model lists no LimitExceededException for CreateThingGroup, so too many
        // tags is an invalid request here.
        let tags = checked_tags(
            input.tags.unwrap_or_default(),
            self.inner.limits.tags_per_resource,
        )
        .map_err(|e| match e {
            EngineError::LimitExceeded(m) => EngineError::InvalidRequest(m),
            other => other,
        })?;
        let now = self.now_ms();
        let record = ThingGroupRecord {
            arn: thing_group_arn(scope, &name),
            id: self.inner.ids.uuid(),
            name,
            parent_name: input.parent_group_name,
            description: properties.thing_group_description,
            attributes,
            version: 1,
            created_at_ms: now,
            updated_at_ms: now,
        };
        let created = match self
            .store()
            .create_thing_group(scope, &record, &tags, MAX_HIERARCHY_DEPTH)
            .await
        {
            Ok(Ok(())) => record,
            Ok(Err(r)) => return Err(refused(r, Subject::Group(&record.name), None)),
            Err(StoreError::AlreadyExists) => {
                // An identical create succeeds without changing anything, tags included.
                let existing = self.store().get_thing_group(scope, &record.name).await?;
                match existing {
                    Some(view) if same_group(&view.group, &record) => view.group,
                    existing => {
                        return Err(EngineError::AlreadyExists {
                            message: format!(
                                "Thing group {} already exists with a different configuration.",
                                record.name
                            ),
                            resource_id: existing.map(|v| v.group.id),
                            resource_arn: Some(record.arn),
                        })
                    }
                }
            }
            Err(e) => return Err(e.into()),
        };
        Ok(CreateThingGroupResponse {
            thing_group_arn: Some(created.arn),
            thing_group_id: Some(created.id),
            thing_group_name: Some(created.name),
        })
    }

    pub async fn describe_thing_group(
        &self,
        scope: &Scope,
        input: DescribeThingGroupRequest,
    ) -> EngineResult<DescribeThingGroupResponse> {
        let name = required(input.thing_group_name, "thingGroupName")?;
        let view = self
            .store()
            .get_thing_group(scope, &name)
            .await?
            .ok_or_else(|| group_not_found(&name))?;
        let group = view.group;
        // As AWS shows them: properties without empty members, and a root group's
        // metadata without parent or ancestors.
        let attribute_payload = (!group.attributes.is_empty()).then_some(AttributePayload {
            attributes: Some(group.attributes),
            merge: None,
        });
        let root_to_parent = (!view.root_to_parent.is_empty()).then(|| {
            view.root_to_parent
                .into_iter()
                .map(name_and_arn)
                .collect::<Vec<_>>()
        });
        Ok(DescribeThingGroupResponse {
            index_name: None,
            query_string: None,
            query_version: None,
            status: None,
            thing_group_arn: Some(group.arn),
            thing_group_id: Some(group.id),
            thing_group_metadata: Some(ThingGroupMetadata {
                creation_date: Some(Timestamp::from_millis(group.created_at_ms)),
                parent_group_name: group.parent_name,
                root_to_parent_thing_groups: root_to_parent,
            }),
            thing_group_name: Some(group.name),
            thing_group_properties: Some(ThingGroupProperties {
                attribute_payload,
                thing_group_description: group.description,
            }),
            version: Some(group.version),
        })
    }

    pub async fn update_thing_group(
        &self,
        scope: &Scope,
        input: UpdateThingGroupRequest,
    ) -> EngineResult<UpdateThingGroupResponse> {
        let name = required(input.thing_group_name, "thingGroupName")?;
        let properties = required(input.thing_group_properties, "thingGroupProperties")?;
        let update = ThingGroupUpdate {
            description: properties.thing_group_description,
            attributes: attribute_change(properties.attribute_payload, Subject::Group(&name))?,
            expected_version: input.expected_version,
            max_attributes: MAX_ATTRIBUTES,
            updated_at_ms: self.now_ms(),
        };
        match self
            .store()
            .update_thing_group(scope, &name, &update)
            .await?
        {
            Ok(group) => Ok(UpdateThingGroupResponse {
                version: Some(group.version),
            }),
            Err(r) => Err(refused(r, Subject::Group(&name), input.expected_version)),
        }
    }

    pub async fn delete_thing_group(
        &self,
        scope: &Scope,
        input: DeleteThingGroupRequest,
    ) -> EngineResult<DeleteThingGroupResponse> {
        let name = required(input.thing_group_name, "thingGroupName")?;
        // The model lists no ResourceNotFoundException: deleting a missing group succeeds.
        match self
            .store()
            .delete_thing_group(scope, &name, input.expected_version)
            .await?
        {
            Ok(_) => Ok(DeleteThingGroupResponse {}),
            Err(r) => Err(refused(r, Subject::Group(&name), input.expected_version)),
        }
    }

    pub async fn list_thing_groups(
        &self,
        scope: &Scope,
        input: ListThingGroupsRequest,
    ) -> EngineResult<ListThingGroupsResponse> {
        let recursive = input.recursive == Some(true);
        // Without parentGroup every group of the account is listed, roots and children
        // alike (as AWS's CLI example shows), so `recursive` has nothing to add there.
        let selection = match input.parent_group {
            None => GroupSelection::All,
            Some(parent) => {
                if self
                    .store()
                    .get_thing_group(scope, &parent)
                    .await?
                    .is_none()
                {
                    return Err(group_not_found(&parent));
                }
                if recursive {
                    GroupSelection::DescendantsOf(parent)
                } else {
                    GroupSelection::ChildrenOf(parent)
                }
            }
        };
        let prefix = input.name_prefix_filter;
        let key = match &selection {
            GroupSelection::All => filter_key(&["all", prefix.as_deref().unwrap_or("")]),
            GroupSelection::ChildrenOf(p) => {
                filter_key(&["children", p, prefix.as_deref().unwrap_or("")])
            }
            GroupSelection::DescendantsOf(p) => {
                filter_key(&["descendants", p, prefix.as_deref().unwrap_or("")])
            }
        };
        let page = self
            .page(
                scope,
                GROUPS_LISTING,
                &key,
                PageRequest {
                    next_token: input.next_token,
                    max_results: input.max_results,
                },
                |g: &GroupRef| g.name.as_str(),
                |after, limit| async move {
                    self.store()
                        .list_thing_groups(
                            scope,
                            &selection,
                            prefix.as_deref(),
                            after.as_deref(),
                            limit,
                        )
                        .await
                },
            )
            .await?;
        Ok(ListThingGroupsResponse {
            thing_groups: Some(page.items.into_iter().map(name_and_arn).collect()),
            next_token: page.next_token,
        })
    }

    pub async fn add_thing_to_thing_group(
        &self,
        scope: &Scope,
        input: AddThingToThingGroupRequest,
    ) -> EngineResult<AddThingToThingGroupResponse> {
        // overrideDynamicGroups only matters for dynamic groups, which Palisade has none of.
        let group = resolve(
            scope,
            Kind::Group,
            input.thing_group_name,
            input.thing_group_arn,
        )?;
        let thing = resolve(scope, Kind::Thing, input.thing_name, input.thing_arn)?;
        self.change_groups(scope, &thing, vec![group], Vec::new())
            .await?;
        Ok(AddThingToThingGroupResponse {})
    }

    pub async fn remove_thing_from_thing_group(
        &self,
        scope: &Scope,
        input: RemoveThingFromThingGroupRequest,
    ) -> EngineResult<RemoveThingFromThingGroupResponse> {
        let group = resolve(
            scope,
            Kind::Group,
            input.thing_group_name,
            input.thing_group_arn,
        )?;
        let thing = resolve(scope, Kind::Thing, input.thing_name, input.thing_arn)?;
        self.change_groups(scope, &thing, Vec::new(), vec![group])
            .await?;
        Ok(RemoveThingFromThingGroupResponse {})
    }

    pub async fn update_thing_groups_for_thing(
        &self,
        scope: &Scope,
        input: UpdateThingGroupsForThingRequest,
    ) -> EngineResult<UpdateThingGroupsForThingResponse> {
        let thing = required(input.thing_name, "thingName")?;
        let add = distinct(input.thing_groups_to_add.unwrap_or_default());
        let remove = distinct(input.thing_groups_to_remove.unwrap_or_default());
        if let Some(both) = add.iter().find(|g| remove.contains(g)) {
            return Err(EngineError::InvalidRequest(format!(
                "Thing group {both} is named in both thingGroupsToAdd and thingGroupsToRemove."
            )));
        }
        // More distinct groups than a thing may be in can never all be added; refusing
        // early also bounds the work a single request can ask for.
        if add.len() > MAX_GROUPS_PER_THING {
            return Err(refused(
                ThingRefusal::TooManyGroups {
                    limit: MAX_GROUPS_PER_THING,
                },
                Subject::Thing(&thing),
                None,
            ));
        }
        self.change_groups(scope, &thing, add, remove).await?;
        Ok(UpdateThingGroupsForThingResponse {})
    }

    async fn change_groups(
        &self,
        scope: &Scope,
        thing: &str,
        add: Vec<String>,
        remove: Vec<String>,
    ) -> EngineResult<()> {
        self.store()
            .change_thing_groups(scope, thing, &add, &remove, MAX_GROUPS_PER_THING)
            .await?
            .map_err(|r| refused(r, Subject::Thing(thing), None))
    }

    pub async fn list_things_in_thing_group(
        &self,
        scope: &Scope,
        input: ListThingsInThingGroupRequest,
    ) -> EngineResult<ListThingsInThingGroupResponse> {
        let group = required(input.thing_group_name, "thingGroupName")?;
        if self.store().get_thing_group(scope, &group).await?.is_none() {
            return Err(group_not_found(&group));
        }
        let recursive = input.recursive == Some(true);
        let key = filter_key(&[&group, flag(recursive)]);
        let page = self
            .page(
                scope,
                GROUP_THINGS_LISTING,
                &key,
                PageRequest {
                    next_token: input.next_token,
                    max_results: input.max_results,
                },
                |t: &String| t.as_str(),
                |after, limit| async move {
                    self.store()
                        .list_things_in_thing_group(
                            scope,
                            &group,
                            recursive,
                            after.as_deref(),
                            limit,
                        )
                        .await
                },
            )
            .await?;
        Ok(ListThingsInThingGroupResponse {
            things: Some(page.items),
            next_token: page.next_token,
        })
    }

    pub async fn list_thing_groups_for_thing(
        &self,
        scope: &Scope,
        input: ListThingGroupsForThingRequest,
    ) -> EngineResult<ListThingGroupsForThingResponse> {
        let thing = required(input.thing_name, "thingName")?;
        if self.store().get_thing(scope, &thing).await?.is_none() {
            return Err(thing_not_found(&thing));
        }
        let key = filter_key(&[&thing]);
        let page = self
            .page(
                scope,
                THING_GROUPS_LISTING,
                &key,
                PageRequest {
                    next_token: input.next_token,
                    max_results: input.max_results,
                },
                |g: &GroupRef| g.name.as_str(),
                |after, limit| async move {
                    self.store()
                        .list_thing_groups_for_thing(scope, &thing, after.as_deref(), limit)
                        .await
                },
            )
            .await?;
        Ok(ListThingGroupsForThingResponse {
            thing_groups: Some(page.items.into_iter().map(name_and_arn).collect()),
            next_token: page.next_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        Scope {
            account_id: "123456789012".into(),
            region: "us-east-1".into(),
        }
    }

    #[test]
    fn resolve_names_and_arns() {
        let s = scope();
        let arn = "arn:aws:iot:us-east-1:123456789012:thing/t1".to_owned();
        assert_eq!(
            resolve(&s, Kind::Thing, None, Some(arn.clone())).unwrap(),
            "t1"
        );
        assert_eq!(
            resolve(&s, Kind::Thing, Some("t1".into()), Some(arn.clone())).unwrap(),
            "t1"
        );
        assert!(matches!(
            resolve(&s, Kind::Thing, Some("t2".into()), Some(arn.clone())),
            Err(EngineError::InvalidRequest(_))
        ));
        assert!(matches!(
            resolve(&s, Kind::Group, None, Some(arn)),
            Err(EngineError::InvalidRequest(_))
        ));
        for foreign in [
            "arn:aws:iot:us-east-1:999999999999:thing/t1",
            "arn:aws:iot:eu-west-1:123456789012:thing/t1",
            "arn:aws-cn:iot:us-east-1:123456789012:thing/t1",
        ] {
            assert!(
                matches!(
                    resolve(&s, Kind::Thing, None, Some(foreign.into())),
                    Err(EngineError::NotFound(_))
                ),
                "{foreign}"
            );
        }
        assert!(matches!(
            resolve(&s, Kind::Thing, None, None),
            Err(EngineError::InvalidRequest(_))
        ));
        assert!(matches!(
            resolve(&s, Kind::Group, None, Some("garbage".into())),
            Err(EngineError::InvalidRequest(_))
        ));
    }

    #[test]
    fn filter_keys_do_not_collide() {
        assert_ne!(filter_key(&["a,1:b", ""]), filter_key(&["a", "b"]));
        assert_ne!(filter_key(&["ab", ""]), filter_key(&["a", "b"]));
    }

    #[test]
    fn empty_values_are_never_stored() {
        let payload = AttributePayload {
            attributes: Some(
                [("a".to_string(), String::new()), ("b".into(), "1".into())]
                    .into_iter()
                    .collect(),
            ),
            merge: None,
        };
        assert_eq!(
            attribute_change(Some(payload.clone()), Subject::Thing("t")).unwrap(),
            Some(AttributeChange::Replace(
                [("b".to_string(), "1".to_string())].into_iter().collect()
            ))
        );
        let merged = AttributePayload {
            merge: Some(true),
            ..payload
        };
        assert_eq!(
            attribute_change(Some(merged), Subject::Thing("t")).unwrap(),
            Some(AttributeChange::Merge(
                [("a".to_string(), None), ("b".into(), Some("1".into()))]
                    .into_iter()
                    .collect()
            ))
        );
        assert_eq!(
            attribute_change(
                Some(AttributePayload {
                    attributes: None,
                    merge: Some(true)
                }),
                Subject::Thing("t")
            )
            .unwrap(),
            None
        );
    }
}
