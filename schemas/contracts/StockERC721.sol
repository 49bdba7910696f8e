// SPDX-License-Identifier: MIT
// Compatible with OpenZeppelin Contracts ^5.0.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721URIStorage} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";

/// @title StockERC721
/// @notice What the OpenZeppelin Wizard writes for an ERC-721 with URI storage (which brings the
///         ERC-4906 events) and Ownable, plus an owner-only batch metadata announcement and one
///         game event of the kind a studio adds: nothing here was written for dnft.
contract StockERC721 is ERC721, ERC721URIStorage, Ownable {
    uint256 private _nextTokenId;

    /// @notice The holder of `hero` trained it: `xp` experience points in `skill`.
    event Trained(uint256 indexed hero, uint256 xp, string skill);

    constructor(address initialOwner) ERC721("StockHero", "HERO") Ownable(initialOwner) {}

    function safeMint(address to) public onlyOwner returns (uint256) {
        uint256 tokenId = _nextTokenId++;
        _safeMint(to, tokenId);
        return tokenId;
    }

    /// @notice Anyone holding `hero` may train it.
    function train(uint256 hero, uint256 xp, string calldata skill) public {
        address holder = ownerOf(hero);
        if (holder != msg.sender) {
            revert ERC721IncorrectOwner(msg.sender, hero, holder);
        }
        emit Trained(hero, xp, skill);
    }

    /// @notice Tells marketplaces (ERC-4906) that tokens `fromTokenId`..`toTokenId` have new metadata.
    function emitBatchMetadataUpdate(uint256 fromTokenId, uint256 toTokenId) public onlyOwner {
        emit BatchMetadataUpdate(fromTokenId, toTokenId);
    }

    // The following functions are overrides required by Solidity.

    function tokenURI(uint256 tokenId) public view override(ERC721, ERC721URIStorage) returns (string memory) {
        return super.tokenURI(tokenId);
    }

    function supportsInterface(bytes4 interfaceId)
        public
        view
        override(ERC721, ERC721URIStorage)
        returns (bool)
    {
        return super.supportsInterface(interfaceId);
    }
}
